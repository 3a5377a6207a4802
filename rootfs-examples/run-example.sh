#!/usr/bin/env bash
# Pack one example program with `nook pack` and run the bundle tar with nook.
# Usage: run-example.sh NOOK BUILD_DIR NAME [pack flags...]
set -euo pipefail
nook=$1 build=$2 name=$3
shift 3
root=$build/state
tar=$build/$name.tar
"$nook" pack "$build/$name" -o "$tar" "$@" >/dev/null
echo "== $name: packed $(tar -tf "$tar" | grep -c .) entries into $tar"
id="example-$name-$$"
if [ "$name" = httpd ]; then
  # The server gets its own network namespace: ask it from inside that namespace.
  "$nook" --root "$root" run --detach --bundle "$tar" "$id"
  trap '"$nook" --root "$root" delete --force "$id" >/dev/null 2>&1 || true' EXIT
  pid=$("$nook" --root "$root" state "$id" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
  for _ in $(seq 50); do
    if nsenter -t "$pid" -n bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080 && printf "GET / HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>/dev/null; then
      exit 0
    fi
    sleep 0.1
  done
  echo "httpd never answered" >&2
  exit 1
fi
exec "$nook" --root "$root" run --bundle "$tar" "$id"
