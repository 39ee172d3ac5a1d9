//! Puts `libleakscope.so` beside the library cargo builds (a symbolic link to
//! `libleakscope_preload.so`), so programs can link leakscope.h's functions
//! directly with `-lleakscope`. A link, not a copy: a program linked with it
//! and started by `leakscope run` (which preloads libleakscope_preload.so)
//! must get one library, and the loader only sees that both names are one
//! object when they are the same file.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else { return };
    // OUT_DIR is <target>/<profile>/build/<package>-<hash>/out.
    let Some(profile_dir) = out.ancestors().nth(3) else { return };
    let link = profile_dir.join("libleakscope.so");
    if std::fs::symlink_metadata(&link).is_err() {
        let _ = std::os::unix::fs::symlink("libleakscope_preload.so", &link);
    }
}
