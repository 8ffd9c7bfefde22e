#!/usr/bin/env bash
# Tests ci/find-libclang.sh (how ci/setup.sh decides that libclang is
# missing) on fake library trees in a temporary directory: fake ELF files
# named as Debian, LLVM's own builds and other distributions name them.
# Ends with a line "setup: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
. ci/find-libclang.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# fake_lib PATH [CLASS]: an ELF header of class CLASS (02: 64-bit, default).
fake_lib() {
    mkdir -p "$(dirname "$1")"
    printf '\177ELF' >"$1"
    printf "\\${2:-002}" >>"$1"
}

# check NAME EXPECTED ACTUAL
check() {
    if [ "$2" = "$3" ]; then
        passed=$((passed + 1))
        echo "ok: $1"
    else
        failed=$((failed + 1))
        echo "FAIL: $1: expected '$2', got '$3'"
    fi
}

# found ROOT: what find_libclang says for a tree, with nothing from this
# machine's environment (no LIBCLANG_PATH, no llvm-config, no library paths).
found() {
    LIBCLANG_PATH='' LLVM_CONFIG_PATH=/nonexistent LD_LIBRARY_PATH='' LIBRARY_PATH='' \
        bash -c '. ci/find-libclang.sh; unset LIBCLANG_PATH; find_libclang "$1" || echo none' _ "$1"
}

# 1. LLVM without libclang: only libclang-cpp and static libraries.
r=$tmp/llvm-only
fake_lib "$r/usr/lib/llvm-14/lib/libclang-cpp.so.14"
ln -s ../llvm-14/lib/libclang-cpp.so.14 "$r/usr/lib/x86_64-linux-gnu/libclang-cpp.so.14" 2>/dev/null ||
    { mkdir -p "$r/usr/lib/x86_64-linux-gnu" && ln -s ../llvm-14/lib/libclang-cpp.so.14 "$r/usr/lib/x86_64-linux-gnu/libclang-cpp.so.14"; }
printf '!<arch>\n' >"$r/usr/lib/llvm-14/lib/libclangBasic.a"
fake_lib "$r/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1"
check "libclang-cpp and libclangBasic.a are not libclang" none "$(found "$r")"

# 2. Debian's libclang1-14: versioned names only, through symlinks.
r=$tmp/debian
fake_lib "$r/usr/lib/x86_64-linux-gnu/libclang-14.so.14.0.6"
ln -s libclang-14.so.14.0.6 "$r/usr/lib/x86_64-linux-gnu/libclang-14.so.1"
fake_lib "$r/usr/lib/llvm-14/lib/libclang-cpp.so.14"
got=$(found "$r")
check "Debian's libclang-14.so.1 is found" yes "$([[ $got == "$r"/usr/lib/x86_64-linux-gnu/libclang-14.so.* ]] && echo yes || echo "$got")"

# 3. A plain libclang.so that is not an ELF file (a linker script, a stub).
r=$tmp/not-elf
mkdir -p "$r/usr/lib"
echo 'INPUT(-lclang-14)' >"$r/usr/lib/libclang.so"
check "a non-ELF libclang.so does not count" none "$(found "$r")"

# 4. A 32-bit library on a 64-bit machine.
r=$tmp/wrong-class
fake_lib "$r/usr/lib/i386-linux-gnu/libclang-13.so.1" 001
check "a 32-bit libclang does not count" none "$(found "$r")"

# 5. A dangling symlink (the package that owned the target was removed).
r=$tmp/dangling
mkdir -p "$r/usr/lib/llvm-15/lib"
ln -s ../../x86_64-linux-gnu/libclang-15.so.1 "$r/usr/lib/llvm-15/lib/libclang.so"
check "a dangling libclang.so does not count" none "$(found "$r")"

# 6. Several versions: the highest wins, whatever the directory order.
r=$tmp/versions
fake_lib "$r/usr/lib/llvm-13/lib/libclang-13.so.1"
fake_lib "$r/usr/lib/llvm-16/lib/libclang-16.so.1"
fake_lib "$r/usr/local/lib/libclang-15.so"
check "the highest version wins" "$r/usr/lib/llvm-16/lib/libclang-16.so.1" "$(found "$r")"

# 7. LLVM's own layout: libclang.so.N in /usr/local/llvm*/lib.
r=$tmp/upstream
fake_lib "$r/usr/local/llvm17/lib/libclang.so.17"
check "upstream libclang.so.17 is found" "$r/usr/local/llvm17/lib/libclang.so.17" "$(found "$r")"

# 8. LIBCLANG_PATH is the only place searched when set: a directory ...
r=$tmp/env
fake_lib "$r/usr/lib/llvm-16/lib/libclang-16.so.1"
fake_lib "$r/opt/clang/lib/libclang.so"
got=$(LIBCLANG_PATH=$r/opt/clang/lib LLVM_CONFIG_PATH=/nonexistent bash -c '. ci/find-libclang.sh; find_libclang "$1" || echo none' _ "$r")
check "LIBCLANG_PATH (a directory) is searched alone" "$r/opt/clang/lib/libclang.so" "$got"
# ... or one file,
got=$(LIBCLANG_PATH=$r/usr/lib/llvm-16/lib/libclang-16.so.1 bash -c '. ci/find-libclang.sh; find_libclang "$1" || echo none' _ "$r")
check "LIBCLANG_PATH (a file) names the library" "$r/usr/lib/llvm-16/lib/libclang-16.so.1" "$got"
# ... and a LIBCLANG_PATH with nothing in it finds nothing, even if /usr has one.
got=$(LIBCLANG_PATH=$r/empty bash -c '. ci/find-libclang.sh; find_libclang "$1" || echo none' _ "$r")
check "an empty LIBCLANG_PATH finds nothing" none "$got"

# 9. llvm-config --prefix is searched (LLVM_CONFIG_PATH names it).
r=$tmp/llvm-config
fake_lib "$r/opt/llvm/lib/libclang.so.18.1"
mkdir -p "$r/bin"
printf '#!/bin/sh\necho %s/opt/llvm\n' "$r" >"$r/bin/llvm-config"
chmod +x "$r/bin/llvm-config"
got=$(LIBCLANG_PATH='' LLVM_CONFIG_PATH=$r/bin/llvm-config bash -c '. ci/find-libclang.sh; unset LIBCLANG_PATH; find_libclang "$1/none" || echo none' _ "$r")
check "llvm-config's prefix is searched" "$r/opt/llvm/lib/libclang.so.18.1" "$got"

# 10. Headers: Debian keeps stddef.h under /usr/lib/llvm-N/lib/clang/*/include.
r=$tmp/debian
check "no headers without libclang-common" no \
    "$(libclang_headers "$r/usr/lib/x86_64-linux-gnu/libclang-14.so.1" "$r" && echo yes || echo no)"
mkdir -p "$r/usr/lib/llvm-14/lib/clang/14.0.6/include"
touch "$r/usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h"
check "Debian's headers are found" yes \
    "$(libclang_headers "$r/usr/lib/x86_64-linux-gnu/libclang-14.so.1" "$r" && echo yes || echo no)"
r=$tmp/upstream
mkdir -p "$r/usr/local/llvm17/lib/clang/17/include"
touch "$r/usr/local/llvm17/lib/clang/17/include/stddef.h"
check "headers beside the library are found" yes \
    "$(libclang_headers "$r/usr/local/llvm17/lib/libclang.so.17" "$r" && echo yes || echo no)"

# 11. Versions are compared as numbers, part by part.
check "version of libclang-14.so.1" "14.0" "$(libclang_version libclang-14.so.1)"
check "version of libclang.so.17.0.6" "17.0.6" "$(libclang_version libclang.so.17.0.6)"
check "9 < 10" yes "$(libclang_version_greater 10.0 9.0 && echo yes || echo no)"
check "16 = 16" no "$(libclang_version_greater 16.0 16.0 && echo yes || echo no)"

# 12. This machine: what setup.sh left behind is what bindgen loads.
lib=$(find_libclang) || lib=none
check "this machine has a loadable libclang" yes "$([ "$lib" != none ] && echo yes || echo no)"
check "this machine has its headers" yes "$([ "$lib" != none ] && libclang_headers "$lib" && echo yes || echo no)"

echo "setup: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
