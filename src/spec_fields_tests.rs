//! Every field of oci-spec's runtime types, walked: a serde Deserializer that answers each
//! request with a placeholder and records the fields each struct asks for. The list is
//! compared with the fields nook knows (FIELDS below); a new oci-spec release with a
//! field nook has not looked at fails the test, so it cannot be ignored unnoticed.

use std::cell::RefCell;
use std::collections::BTreeSet;

use serde::de::{self, value::Error as E, Deserializer, IntoDeserializer, Visitor};

struct Rec<'a> {
    path: String,
    out: &'a RefCell<BTreeSet<String>>,
}

impl<'a> Rec<'a> {
    fn child(&self, name: &str) -> Rec<'a> {
        let path = if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        };
        Rec {
            path,
            out: self.out,
        }
    }

    /// A string the field's own checks accept.
    fn string(&self) -> &'static str {
        if self.path.contains("capabilities") {
            "CAP_CHOWN"
        } else {
            "0"
        }
    }
}

macro_rules! zero {
    ($($m:ident),*) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
            v.visit_u8(0)
        }
    )*};
}

impl<'de> Deserializer<'de> for Rec<'_> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_str(self.string())
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_bool(false)
    }
    zero!(
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64
    );
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_f64(0.0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_f64(0.0)
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_char('0')
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_str(self.string())
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_str(self.string())
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_bytes(b"")
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_bytes(b"")
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_some(self)
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, E> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, E> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_seq(One(Some(self.child("[]"))))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, E> {
        v.visit_seq(One(Some(self.child("[]"))))
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, E> {
        v.visit_seq(One(Some(self.child("[]"))))
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_map(Fields {
            names: &["*"],
            i: 0,
            rec: self,
            map: true,
        })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        names: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, E> {
        for n in names {
            self.out.borrow_mut().insert(self.child(n).path);
        }
        v.visit_map(Fields {
            names,
            i: 0,
            rec: self,
            map: false,
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, E> {
        v.visit_enum(First(variants[0]))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_str(self.string())
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_unit()
    }
}

/// A sequence of one element.
struct One<'a>(Option<Rec<'a>>);

impl<'de> de::SeqAccess<'de> for One<'_> {
    type Error = E;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, E> {
        self.0.take().map(|r| seed.deserialize(r)).transpose()
    }
}

/// A struct's fields, or a map of one entry (key "0" or a capability name: the
/// placeholder string, so a map keyed by an enum gets a value it accepts).
struct Fields<'a> {
    names: &'static [&'static str],
    i: usize,
    rec: Rec<'a>,
    map: bool,
}

impl<'de> de::MapAccess<'de> for Fields<'_> {
    type Error = E;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, E> {
        if self.i >= self.names.len() {
            return Ok(None);
        }
        let key = if self.map {
            self.rec.string()
        } else {
            self.names[self.i]
        };
        seed.deserialize(key.into_deserializer()).map(Some)
    }
    fn next_value_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, E> {
        let name = self.names[self.i];
        self.i += 1;
        seed.deserialize(self.rec.child(name))
    }
}

/// An enum's first variant, as a unit variant.
struct First(&'static str);

impl<'de> de::EnumAccess<'de> for First {
    type Error = E;
    type Variant = Unit;
    fn variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Unit), E> {
        Ok((seed.deserialize(self.0.into_deserializer())?, Unit))
    }
}

struct Unit;

impl<'de> de::VariantAccess<'de> for Unit {
    type Error = E;
    fn unit_variant(self) -> Result<(), E> {
        Ok(())
    }
    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(self, _: T) -> Result<T::Value, E> {
        Err(de::Error::custom("newtype variant"))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, E> {
        Err(de::Error::custom("tuple variant"))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, E> {
        Err(de::Error::custom("struct variant"))
    }
}

/// Every JSON path oci-spec's Spec has ("[]" an array element, "*" a map value).
fn walk() -> BTreeSet<String> {
    let out = RefCell::new(BTreeSet::new());
    let rec = Rec {
        path: String::new(),
        out: &out,
    };
    let r = <oci_spec::runtime::Spec as serde::Deserialize>::deserialize(rec);
    if let Err(e) = r {
        panic!("walking oci-spec's Spec stopped: {e}");
    }
    out.into_inner()
}

/// What nook does with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Applied,
    Refused(&'static str),
    Ignored(&'static str),
}
use How::*;

const RDMA: &str = "rdma limits: refused at create";
const IDMAP: &str = "idmapped mounts: refused at create";
const TOP_MAPS: &str =
    "not a runtime-spec field (oci-spec keeps it, deprecated): refused at create";
const PLATFORM: &str =
    "another platform's section: nothing for a Linux runtime (runc ignores it too)";

/// Every field of oci-spec's Spec nook has looked at: applied (or checked and used), refused at
/// create when set, or accepted without effect for the reason given.
const FIELDS: &[(&str, How)] = &[
    ("annotations", Applied),
    ("domainname", Applied),
    ("gidMappings", Refused(TOP_MAPS)),
    ("gidMappings.[].containerID", Refused(TOP_MAPS)),
    ("gidMappings.[].hostID", Refused(TOP_MAPS)),
    ("gidMappings.[].size", Refused(TOP_MAPS)),
    ("hooks", Applied),
    ("hooks.createContainer", Applied),
    ("hooks.createContainer.[].args", Applied),
    ("hooks.createContainer.[].env", Applied),
    ("hooks.createContainer.[].path", Applied),
    ("hooks.createContainer.[].timeout", Applied),
    ("hooks.createRuntime", Applied),
    ("hooks.createRuntime.[].args", Applied),
    ("hooks.createRuntime.[].env", Applied),
    ("hooks.createRuntime.[].path", Applied),
    ("hooks.createRuntime.[].timeout", Applied),
    ("hooks.poststart", Applied),
    ("hooks.poststart.[].args", Applied),
    ("hooks.poststart.[].env", Applied),
    ("hooks.poststart.[].path", Applied),
    ("hooks.poststart.[].timeout", Applied),
    ("hooks.poststop", Applied),
    ("hooks.poststop.[].args", Applied),
    ("hooks.poststop.[].env", Applied),
    ("hooks.poststop.[].path", Applied),
    ("hooks.poststop.[].timeout", Applied),
    ("hooks.prestart", Applied),
    ("hooks.prestart.[].args", Applied),
    ("hooks.prestart.[].env", Applied),
    ("hooks.prestart.[].path", Applied),
    ("hooks.prestart.[].timeout", Applied),
    ("hooks.startContainer", Applied),
    ("hooks.startContainer.[].args", Applied),
    ("hooks.startContainer.[].env", Applied),
    ("hooks.startContainer.[].path", Applied),
    ("hooks.startContainer.[].timeout", Applied),
    ("hostname", Applied),
    ("linux", Applied),
    ("linux.cgroupsPath", Applied),
    ("linux.devices", Applied),
    ("linux.devices.[].fileMode", Applied),
    ("linux.devices.[].gid", Applied),
    ("linux.devices.[].major", Applied),
    ("linux.devices.[].minor", Applied),
    ("linux.devices.[].path", Applied),
    ("linux.devices.[].type", Applied),
    ("linux.devices.[].uid", Applied),
    ("linux.gidMappings", Applied),
    ("linux.gidMappings.[].containerID", Applied),
    ("linux.gidMappings.[].hostID", Applied),
    ("linux.gidMappings.[].size", Applied),
    ("linux.intelRdt", Applied),
    ("linux.intelRdt.closID", Applied),
    ("linux.intelRdt.enableCmt", Applied),
    ("linux.intelRdt.enableMbm", Applied),
    ("linux.intelRdt.enableMonitoring", Applied),
    ("linux.intelRdt.l3CacheSchema", Applied),
    ("linux.intelRdt.memBwSchema", Applied),
    ("linux.intelRdt.schemata", Applied),
    ("linux.maskedPaths", Applied),
    ("linux.memoryPolicy", Applied),
    ("linux.memoryPolicy.flags", Applied),
    ("linux.memoryPolicy.mode", Applied),
    ("linux.memoryPolicy.nodes", Applied),
    ("linux.mountLabel", Applied),
    ("linux.namespaces", Applied),
    ("linux.namespaces.[].path", Applied),
    ("linux.namespaces.[].type", Applied),
    ("linux.netDevices", Applied),
    ("linux.netDevices.*.name", Applied),
    ("linux.personality", Applied),
    ("linux.personality.domain", Applied),
    ("linux.personality.flags", Applied),
    ("linux.readonlyPaths", Applied),
    ("linux.resources", Applied),
    ("linux.resources.blockIO", Applied),
    ("linux.resources.blockIO.leafWeight", Applied),
    ("linux.resources.blockIO.throttleReadBpsDevice", Applied),
    ("linux.resources.blockIO.throttleReadBpsDevice.[].major", Applied),
    ("linux.resources.blockIO.throttleReadBpsDevice.[].minor", Applied),
    ("linux.resources.blockIO.throttleReadBpsDevice.[].rate", Applied),
    ("linux.resources.blockIO.throttleReadIOPSDevice", Applied),
    ("linux.resources.blockIO.throttleReadIOPSDevice.[].major", Applied),
    ("linux.resources.blockIO.throttleReadIOPSDevice.[].minor", Applied),
    ("linux.resources.blockIO.throttleReadIOPSDevice.[].rate", Applied),
    ("linux.resources.blockIO.throttleWriteBpsDevice", Applied),
    ("linux.resources.blockIO.throttleWriteBpsDevice.[].major", Applied),
    ("linux.resources.blockIO.throttleWriteBpsDevice.[].minor", Applied),
    ("linux.resources.blockIO.throttleWriteBpsDevice.[].rate", Applied),
    ("linux.resources.blockIO.throttleWriteIOPSDevice", Applied),
    ("linux.resources.blockIO.throttleWriteIOPSDevice.[].major", Applied),
    ("linux.resources.blockIO.throttleWriteIOPSDevice.[].minor", Applied),
    ("linux.resources.blockIO.throttleWriteIOPSDevice.[].rate", Applied),
    ("linux.resources.blockIO.weight", Applied),
    ("linux.resources.blockIO.weightDevice", Applied),
    ("linux.resources.blockIO.weightDevice.[].leafWeight", Applied),
    ("linux.resources.blockIO.weightDevice.[].major", Applied),
    ("linux.resources.blockIO.weightDevice.[].minor", Applied),
    ("linux.resources.blockIO.weightDevice.[].weight", Applied),
    ("linux.resources.cpu", Applied),
    ("linux.resources.cpu.burst", Applied),
    ("linux.resources.cpu.cpus", Applied),
    ("linux.resources.cpu.idle", Applied),
    ("linux.resources.cpu.mems", Applied),
    ("linux.resources.cpu.period", Applied),
    ("linux.resources.cpu.quota", Applied),
    ("linux.resources.cpu.realtimePeriod", Applied),
    ("linux.resources.cpu.realtimeRuntime", Applied),
    ("linux.resources.cpu.shares", Applied),
    ("linux.resources.devices", Applied),
    ("linux.resources.devices.[].access", Applied),
    ("linux.resources.devices.[].allow", Applied),
    ("linux.resources.devices.[].major", Applied),
    ("linux.resources.devices.[].minor", Applied),
    ("linux.resources.devices.[].type", Applied),
    ("linux.resources.hugepageLimits", Applied),
    ("linux.resources.hugepageLimits.[].limit", Applied),
    ("linux.resources.hugepageLimits.[].pageSize", Applied),
    ("linux.resources.memory", Applied),
    ("linux.resources.memory.checkBeforeUpdate", Ignored("a hint for update (runc checks usage before lowering a v2 limit); the kernel refuses a limit below usage anyway")),
    ("linux.resources.memory.disableOOMKiller", Applied),
    ("linux.resources.memory.kernel", Applied),
    ("linux.resources.memory.kernelTCP", Applied),
    ("linux.resources.memory.limit", Applied),
    ("linux.resources.memory.reservation", Applied),
    ("linux.resources.memory.swap", Applied),
    ("linux.resources.memory.swappiness", Applied),
    ("linux.resources.memory.useHierarchy", Ignored("v1 memory.use_hierarchy is always on in the kernels nook supports")),
    ("linux.resources.network", Applied),
    ("linux.resources.network.classID", Applied),
    ("linux.resources.network.priorities", Applied),
    ("linux.resources.network.priorities.[].name", Applied),
    ("linux.resources.network.priorities.[].priority", Applied),
    ("linux.resources.pids", Applied),
    ("linux.resources.pids.limit", Applied),
    ("linux.resources.rdma", Refused(RDMA)),
    ("linux.resources.rdma.*.hcaHandles", Refused(RDMA)),
    ("linux.resources.rdma.*.hcaObjects", Refused(RDMA)),
    ("linux.resources.unified", Applied),
    ("linux.rootfsPropagation", Applied),
    ("linux.seccomp", Applied),
    ("linux.seccomp.architectures", Applied),
    ("linux.seccomp.defaultAction", Applied),
    ("linux.seccomp.defaultErrnoRet", Applied),
    ("linux.seccomp.flags", Applied),
    ("linux.seccomp.listenerMetadata", Applied),
    ("linux.seccomp.listenerPath", Applied),
    ("linux.seccomp.syscalls", Applied),
    ("linux.seccomp.syscalls.[].action", Applied),
    ("linux.seccomp.syscalls.[].args", Applied),
    ("linux.seccomp.syscalls.[].args.[].index", Applied),
    ("linux.seccomp.syscalls.[].args.[].op", Applied),
    ("linux.seccomp.syscalls.[].args.[].value", Applied),
    ("linux.seccomp.syscalls.[].args.[].valueTwo", Applied),
    ("linux.seccomp.syscalls.[].errnoRet", Applied),
    ("linux.seccomp.syscalls.[].names", Applied),
    ("linux.sysctl", Applied),
    ("linux.timeOffsets", Applied),
    ("linux.timeOffsets.*.nanosecs", Applied),
    ("linux.timeOffsets.*.secs", Applied),
    ("linux.uidMappings", Applied),
    ("linux.uidMappings.[].containerID", Applied),
    ("linux.uidMappings.[].hostID", Applied),
    ("linux.uidMappings.[].size", Applied),
    ("mounts", Applied),
    ("mounts.[].destination", Applied),
    ("mounts.[].gidMappings", Refused(IDMAP)),
    ("mounts.[].gidMappings.[].containerID", Refused(IDMAP)),
    ("mounts.[].gidMappings.[].hostID", Refused(IDMAP)),
    ("mounts.[].gidMappings.[].size", Refused(IDMAP)),
    ("mounts.[].options", Applied),
    ("mounts.[].source", Applied),
    ("mounts.[].type", Applied),
    ("mounts.[].uidMappings", Refused(IDMAP)),
    ("mounts.[].uidMappings.[].containerID", Refused(IDMAP)),
    ("mounts.[].uidMappings.[].hostID", Refused(IDMAP)),
    ("mounts.[].uidMappings.[].size", Refused(IDMAP)),
    ("ociVersion", Applied),
    ("process", Applied),
    ("process.apparmorProfile", Applied),
    ("process.args", Applied),
    ("process.capabilities", Applied),
    ("process.capabilities.ambient", Applied),
    ("process.capabilities.bounding", Applied),
    ("process.capabilities.effective", Applied),
    ("process.capabilities.inheritable", Applied),
    ("process.capabilities.permitted", Applied),
    ("process.commandLine", Ignored("Windows only: a command line as one string")),
    ("process.consoleSize", Applied),
    ("process.consoleSize.height", Applied),
    ("process.consoleSize.width", Applied),
    ("process.cwd", Applied),
    ("process.env", Applied),
    ("process.execCPUAffinity", Applied),
    ("process.execCPUAffinity.final", Applied),
    ("process.execCPUAffinity.initial", Applied),
    ("process.ioPriority", Applied),
    ("process.ioPriority.class", Applied),
    ("process.ioPriority.priority", Applied),
    ("process.noNewPrivileges", Applied),
    ("process.oomScoreAdj", Applied),
    ("process.rlimits", Applied),
    ("process.rlimits.[].hard", Applied),
    ("process.rlimits.[].soft", Applied),
    ("process.rlimits.[].type", Applied),
    ("process.scheduler", Applied),
    ("process.scheduler.deadline", Applied),
    ("process.scheduler.flags", Applied),
    ("process.scheduler.nice", Applied),
    ("process.scheduler.period", Applied),
    ("process.scheduler.policy", Applied),
    ("process.scheduler.priority", Applied),
    ("process.scheduler.runtime", Applied),
    ("process.selinuxLabel", Applied),
    ("process.terminal", Applied),
    ("process.user", Applied),
    ("process.user.additionalGids", Applied),
    ("process.user.gid", Applied),
    ("process.user.uid", Applied),
    ("process.user.umask", Applied),
    ("process.user.username", Ignored("Windows only")),
    ("root", Applied),
    ("root.path", Applied),
    ("root.readonly", Applied),
    ("solaris", Ignored(PLATFORM)),
    ("solaris.anet", Ignored(PLATFORM)),
    ("solaris.anet.[].allowedAddress", Ignored(PLATFORM)),
    ("solaris.anet.[].configureAllowedAddress", Ignored(PLATFORM)),
    ("solaris.anet.[].defrouter", Ignored(PLATFORM)),
    ("solaris.anet.[].linkProtection", Ignored(PLATFORM)),
    ("solaris.anet.[].linkname", Ignored(PLATFORM)),
    ("solaris.anet.[].lowerLink", Ignored(PLATFORM)),
    ("solaris.anet.[].macAddress", Ignored(PLATFORM)),
    ("solaris.cappedCPU", Ignored(PLATFORM)),
    ("solaris.cappedCPU.ncpus", Ignored(PLATFORM)),
    ("solaris.cappedMemory", Ignored(PLATFORM)),
    ("solaris.cappedMemory.physical", Ignored(PLATFORM)),
    ("solaris.cappedMemory.swap", Ignored(PLATFORM)),
    ("solaris.limitpriv", Ignored(PLATFORM)),
    ("solaris.maxShmMemory", Ignored(PLATFORM)),
    ("solaris.milestone", Ignored(PLATFORM)),
    ("uidMappings", Refused(TOP_MAPS)),
    ("uidMappings.[].containerID", Refused(TOP_MAPS)),
    ("uidMappings.[].hostID", Refused(TOP_MAPS)),
    ("uidMappings.[].size", Refused(TOP_MAPS)),
    ("vm", Ignored(PLATFORM)),
    ("vm.hypervisor", Ignored(PLATFORM)),
    ("vm.hypervisor.parameters", Ignored(PLATFORM)),
    ("vm.hypervisor.path", Ignored(PLATFORM)),
    ("vm.image", Ignored(PLATFORM)),
    ("vm.image.format", Ignored(PLATFORM)),
    ("vm.image.path", Ignored(PLATFORM)),
    ("vm.kernel", Ignored(PLATFORM)),
    ("vm.kernel.initrd", Ignored(PLATFORM)),
    ("vm.kernel.parameters", Ignored(PLATFORM)),
    ("vm.kernel.path", Ignored(PLATFORM)),
    ("windows", Ignored(PLATFORM)),
    ("windows.credentialSpec", Ignored(PLATFORM)),
    ("windows.devices", Ignored(PLATFORM)),
    ("windows.devices.[].id", Ignored(PLATFORM)),
    ("windows.devices.[].idType", Ignored(PLATFORM)),
    ("windows.hyperv", Ignored(PLATFORM)),
    ("windows.hyperv.utilityVmPath", Ignored(PLATFORM)),
    ("windows.ignoreFlushesDuringBoot", Ignored(PLATFORM)),
    ("windows.layerFolders", Ignored(PLATFORM)),
    ("windows.network", Ignored(PLATFORM)),
    ("windows.network.DNSSearchList", Ignored(PLATFORM)),
    ("windows.network.allowUnqualifiedDNSQuery", Ignored(PLATFORM)),
    ("windows.network.endpointList", Ignored(PLATFORM)),
    ("windows.network.networkNamespace", Ignored(PLATFORM)),
    ("windows.network.networkSharedContainerName", Ignored(PLATFORM)),
    ("windows.resources", Ignored(PLATFORM)),
    ("windows.resources.cpu", Ignored(PLATFORM)),
    ("windows.resources.cpu.count", Ignored(PLATFORM)),
    ("windows.resources.cpu.maximum", Ignored(PLATFORM)),
    ("windows.resources.cpu.shares", Ignored(PLATFORM)),
    ("windows.resources.memory", Ignored(PLATFORM)),
    ("windows.resources.memory.limit", Ignored(PLATFORM)),
    ("windows.resources.storage", Ignored(PLATFORM)),
    ("windows.resources.storage.bps", Ignored(PLATFORM)),
    ("windows.resources.storage.iops", Ignored(PLATFORM)),
    ("windows.resources.storage.sandboxSize", Ignored(PLATFORM)),
    ("windows.servicing", Ignored(PLATFORM)),
    ("zos", Ignored(PLATFORM)),
    ("zos.namespaces", Ignored(PLATFORM)),
    ("zos.namespaces.[].path", Ignored(PLATFORM)),
    ("zos.namespaces.[].type", Ignored(PLATFORM)),
];

#[test]
fn every_oci_spec_field_is_handled_or_listed() {
    let walked = walk();
    assert!(
        walked.len() > 200,
        "the walk found only {} fields",
        walked.len()
    );
    let known: BTreeSet<String> = FIELDS.iter().map(|(f, _)| f.to_string()).collect();
    let new: Vec<&String> = walked.difference(&known).collect();
    assert!(
        new.is_empty(),
        "oci-spec has fields nook has not looked at: {new:#?}\n\
         apply them, refuse them at create (spec::check), or list why they are ignored"
    );
    let gone: Vec<&String> = known.difference(&walked).collect();
    assert!(
        gone.is_empty(),
        "listed fields oci-spec no longer has: {gone:#?}"
    );
    for (f, how) in FIELDS {
        if let Ignored(why) | Refused(why) = how {
            assert!(!why.is_empty(), "{f}: no reason given");
        }
    }
}

/// The fields listed as refused are refused by spec::check when set (each group once).
#[test]
fn refused_fields_are_refused() {
    let base = serde_json::json!({"ociVersion": "1.2.0", "root": {"path": "rootfs"},
        "process": {"args": ["/a"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "linux": {"namespaces": [{"type": "mount"}]}});
    let maps = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    // (linux.intelRdt is refused only where resctrl is not mounted, as here.)
    let rdt = crate::linux::resctrl::mount_point().is_none();
    let cases = [
        (
            "linux.intelRdt",
            serde_json::json!({"linux": {"intelRdt": {"closID": "x"}}}),
        ),
        (
            "linux.resources.rdma",
            serde_json::json!({"linux": {"resources": {"rdma": {"mlx": {"hcaHandles": 1}}}}}),
        ),
        (
            "mounts[0].uidMappings",
            serde_json::json!({"mounts": [{"destination": "/m", "type": "bind", "source": "/",
                "uidMappings": maps.clone(), "gidMappings": maps.clone()}]}),
        ),
        (
            "uidMappings",
            serde_json::json!({"uidMappings": maps.clone()}),
        ),
    ];
    for (field, edit) in cases
        .into_iter()
        .filter(|(f, _)| rdt || *f != "linux.intelRdt")
    {
        let mut v = base.clone();
        for (k, val) in edit.as_object().unwrap() {
            match (v.get_mut(k), val) {
                (Some(serde_json::Value::Object(d)), serde_json::Value::Object(s)) => {
                    for (k2, v2) in s {
                        d.insert(k2.clone(), v2.clone());
                    }
                }
                _ => v[k] = val.clone(),
            }
        }
        let spec = super::parse(std::path::Path::new("config.json"), &v.to_string())
            .unwrap_or_else(|e| panic!("{field}: {e}"));
        let err = super::check(&spec).expect_err(field).to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
}
