//! state.json as every command reads it: any bytes give an error or a State that
//! writes back and reads again to the same JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nook::state::State;

fuzz_target!(|data: &[u8]| {
    if let Ok(st) = serde_json::from_slice::<State>(data) {
        let again = serde_json::to_vec(&st).expect("a read state serializes");
        let back: State = serde_json::from_slice(&again).expect("a written state reads back");
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&st).unwrap()
        );
    }
});
