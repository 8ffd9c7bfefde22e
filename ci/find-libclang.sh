#!/usr/bin/env bash
# Finds the libclang that bindgen (rsmpi's build script) will load, by the
# search rules of clang-sys 1.9 with its `runtime` feature (the one bindgen
# enables), and the clang builtin headers (stddef.h) it needs beside it.
# ci/setup.sh installs libclang-dev when either is missing; ci/test-setup.sh
# tests these functions on fake library trees.
#
# The rules (clang-sys build/common.rs and build/dynamic.rs):
# - file names: libclang.so, libclang-*.so, libclang.so.*, libclang-*.so.*,
#   never one with `-cpp.` in it (libclang-cpp.so.14 is another library);
# - directories: only $LIBCLANG_PATH when it is set (a directory, or the full
#   path of one such file); else `llvm-config --prefix`/{bin,lib,lib64}
#   ($LLVM_CONFIG_PATH names llvm-config), $LD_LIBRARY_PATH, $LIBRARY_PATH,
#   then /usr/local/llvm*/lib*, /usr/local/lib*/*/*, /usr/local/lib*/*,
#   /usr/local/lib*, /usr/lib*/*/*, /usr/lib*/*, /usr/lib*;
# - a file counts only if it is an ELF library of this machine's word size;
# - of those, the highest version in the name wins (the first found on a tie).
#
# Usage: `bash ci/find-libclang.sh [ROOT]` prints the library's path (exit 1:
# none); sourced, it defines find_libclang and libclang_headers. ROOT (default
# empty) prefixes the standard directories, for tests.

# libclang_candidates DIR: the matching file names in DIR, one path a line.
libclang_candidates() {
    local dir=$1 path name
    [ -d "$dir" ] || return 0
    for path in "$dir"/libclang.so "$dir"/libclang-*.so "$dir"/libclang.so.* "$dir"/libclang-*.so.*; do
        [ -e "$path" ] || [ -L "$path" ] || continue
        name=${path##*/}
        case $name in *-cpp.*) continue ;; esac
        printf '%s\n' "$path"
    done
}

# libclang_is_loadable PATH: an ELF file (symlinks followed) whose class
# matches this machine's word size (64-bit: class 2).
libclang_is_loadable() {
    local want header
    want=02
    [ "$(getconf LONG_BIT 2>/dev/null || echo 64)" = 32 ] && want=01
    header=$(head -c 5 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')
    [ "$header" = "7f454c46$want" ]
}

# libclang_version NAME: clang-sys's version key, as dot-separated numbers
# (libclang.so.X.Y -> X.Y; libclang-X.so[.Y] -> what lies between `libclang-`
# and the last 3 characters; anything else -> empty). Non-numbers count 0.
libclang_version() {
    local name=$1 version part out=()
    case $name in
        libclang.so.*) version=${name#libclang.so.} ;;
        libclang-*) version=${name:9:${#name}-12} ;;
        *) version= ;;
    esac
    [ -n "$version" ] || { echo; return; }
    local IFS=.
    for part in $version; do
        [[ $part =~ ^[0-9]+$ ]] && out+=("$((10#$part))") || out+=(0)
    done
    echo "${out[*]}"
}

# libclang_version_greater A B: whether version key A sorts after B (numeric
# parts compared in order; a longer key with an equal prefix is greater).
libclang_version_greater() {
    local -a a b
    IFS=. read -r -a a <<<"$1"
    IFS=. read -r -a b <<<"$2"
    local i
    for ((i = 0; i < ${#a[@]} || i < ${#b[@]}; i++)); do
        [ $i -ge ${#b[@]} ] && return 0
        [ $i -ge ${#a[@]} ] && return 1
        [ "${a[i]}" -gt "${b[i]}" ] && return 0
        [ "${a[i]}" -lt "${b[i]}" ] && return 1
    done
    return 1
}

# libclang_search_dirs ROOT: the directories clang-sys searches, in order.
libclang_search_dirs() {
    local root=$1 prefix entry pattern dir
    if [ -n "${LIBCLANG_PATH:-}" ]; then
        # A file path names that very library (when it matches); else a directory.
        if [ -n "$(libclang_candidates "$(dirname "$LIBCLANG_PATH")" | grep -Fx "$LIBCLANG_PATH")" ]; then
            printf 'FILE:%s\n' "$LIBCLANG_PATH"
        else
            printf '%s\n' "$LIBCLANG_PATH"
        fi
        return
    fi
    if prefix=$("${LLVM_CONFIG_PATH:-llvm-config}" --prefix 2>/dev/null) && [ -n "$prefix" ]; then
        prefix=$(printf '%s\n' "$prefix" | head -n 1)
        printf '%s\n' "$prefix/bin" "$prefix/lib" "$prefix/lib64"
    fi
    local IFS=:
    for entry in ${LD_LIBRARY_PATH:-} ${LIBRARY_PATH:-}; do
        [ -n "$entry" ] && printf '%s\n' "$entry"
    done
    unset IFS
    for pattern in '/usr/local/llvm*/lib*' '/usr/local/lib*/*/*' '/usr/local/lib*/*' '/usr/local/lib*' \
        '/usr/lib*/*/*' '/usr/lib*/*' '/usr/lib*'; do
        for dir in $root$pattern; do
            [ -d "$dir" ] && printf '%s\n' "$dir"
        done
    done
}

# find_libclang [ROOT]: prints the path of the libclang bindgen would load;
# returns 1 when there is none.
find_libclang() {
    local root=${1:-} dir path best= best_version= version
    while IFS= read -r dir; do
        if [[ $dir == FILE:* ]]; then
            path=${dir#FILE:}
            libclang_is_loadable "$path" && { printf '%s\n' "$path"; return 0; }
            return 1
        fi
        while IFS= read -r path; do
            libclang_is_loadable "$path" || continue
            version=$(libclang_version "${path##*/}")
            if [ -z "$best" ] || libclang_version_greater "$version" "$best_version"; then
                best=$path
                best_version=$version
            fi
        done < <(libclang_candidates "$dir")
    done < <(libclang_search_dirs "$root")
    [ -n "$best" ] || return 1
    printf '%s\n' "$best"
}

# libclang_headers LIBRARY [ROOT]: whether clang's builtin headers (stddef.h,
# which mpi.h includes) are installed for that library: in clang/*/include
# beside it (as given or with symlinks resolved), or, for a library of major
# version N, in ROOT/usr/lib/llvm-N/lib/clang/*/include (Debian's layout).
libclang_headers() {
    local lib=$1 root=${2:-} major dir real
    major=$(libclang_version "${lib##*/}")
    major=${major%%.*}
    real=$(readlink -f "$lib" 2>/dev/null || echo "$lib")
    for dir in "$(dirname "$lib")" "$(dirname "$real")" ${major:+"$root/usr/lib/llvm-$major/lib"}; do
        compgen -G "$dir/clang/*/include/stddef.h" >/dev/null && return 0
    done
    return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    find_libclang "${1:-}"
fi
