//! Names the questions the crate asks about the target OS, once.
//!
//! "Does this OS have epoll?", "kqueue?" and "io_uring?" would otherwise be
//! spelled out as lists of `target_os` values at every `#[cfg]` that needs
//! them. This script answers them here and sets the cfgs `with_epoll`,
//! `with_kqueue` and `with_uring`: each is on when the OS has the mechanism
//! *and* its cargo feature is enabled, so `#[cfg(with_epoll)]` means "the
//! epoll backend is compiled in". Whether the running kernel allows
//! io_uring is a run-time question (`BackendKind::availability`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(with_epoll)");
    println!("cargo::rustc-check-cfg=cfg(with_kqueue)");
    println!("cargo::rustc-check-cfg=cfg(with_uring)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let feature =
        |name: &str| std::env::var_os(format!("CARGO_FEATURE_{}", name.to_uppercase())).is_some();
    if feature("epoll") && matches!(os.as_str(), "linux" | "android") {
        println!("cargo::rustc-cfg=with_epoll");
    }
    if feature("uring") && os == "linux" {
        println!("cargo::rustc-cfg=with_uring");
    }
    let kqueue_os = matches!(
        os.as_str(),
        "macos" | "ios" | "freebsd" | "openbsd" | "netbsd" | "dragonfly"
    );
    if feature("kqueue") && kqueue_os {
        println!("cargo::rustc-cfg=with_kqueue");
    }
}
