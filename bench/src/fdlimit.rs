//! The descriptor limit for benchmarks that open a thousand sockets (shared by the suite and the
//! soak driver).

/// 1 000 sockets on this side and 1 000 on each node (which inherits the limit) need more
/// descriptors than a default soft limit of 1024: raises the soft limit to the hard one.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid struct of this process.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
