//! Links libnftnl statically when the system ships `libnftnl.a` (Debian's and Ubuntu's
//! libnftnl-dev do), so the release binary needs only libmnl.so.0 and glibc at run time and can
//! be copied into a CI image. libmnl stays dynamic: Debian ships no libmnl.a, and libmnl0 is a
//! dependency of iproute2, present almost everywhere.
//!
//! nftnl-sys asks pkg-config, which links whatever `-lnftnl` finds first. This script puts a
//! directory holding only `libnftnl.a` ahead in the search path, so `-lnftnl` finds the archive.
//! `LAB_NFTNL_DYNAMIC=1` (or a system without the archive) keeps the shared library.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LAB_NFTNL_DYNAMIC");
    if env::var_os("LAB_NFTNL_DYNAMIC").is_some_and(|v| !v.is_empty() && v != "0") {
        return;
    }
    let Some(out_dir) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let Ok(libdir) = pkg_config::get_variable("libnftnl", "libdir") else {
        // nftnl-sys reports the missing library itself, with pkg-config's explanation.
        return;
    };
    let archive = PathBuf::from(libdir).join("libnftnl.a");
    if !archive.is_file() {
        return;
    }
    println!("cargo:rerun-if-changed={}", archive.display());
    let dir = out_dir.join("nftnl-static");
    if fs::create_dir_all(&dir)
        .and_then(|()| fs::copy(&archive, dir.join("libnftnl.a")))
        .is_err()
    {
        println!(
            "cargo:warning=could not copy {}; libnftnl stays a shared library",
            archive.display()
        );
        return;
    }
    println!("cargo:rustc-link-search=native={}", dir.display());
    // The archive's own dependency: libnftnl.so would name libmnl itself, the archive cannot.
    if let Err(e) = pkg_config::probe_library("libmnl") {
        println!("cargo:warning=libnftnl.a needs libmnl, which pkg-config cannot find: {e}");
    }
}
