//! The app's default seccomp filter: Docker's default profile (moby
//! `profiles/seccomp/default.json`) for x86_64 and aarch64. An allowlist:
//! any syscall not named here, including every syscall number the kernel
//! gains later and x32 numbers on x86_64, fails with EPERM. Syscalls that
//! Docker grants only with a capability (`mount`, `unshare`, `setns`,
//! `bpf`...; `keyctl`, `kexec_load` never) are allowed when the app keeps
//! that capability, so `--caps-retain` keeps meaning what it says. Without
//! CAP_SYS_ADMIN, `clone` is refused when it asks for a new namespace
//! (CLONE_NEWUSER included, so no nested user namespace with full
//! capabilities) and `clone3`, whose flags seccomp cannot read, fails with
//! ENOSYS so that libc falls back to `clone`.
//!
//! The classic-BPF program is generated here as a binary search over the
//! sorted syscall numbers. A crate was tried first (seccompiler, pure Rust)
//! and measured: it emits one comparison per syscall in a row, and since
//! Linux 5.11 the kernel runs a new filter once for every syscall number
//! to cache constant answers, so its 1600-instruction filter took 0.89 ms
//! to install in every pod. The search tree takes a few instructions per
//! syscall and installs in a few tens of microseconds (unit tests below
//! run the program through a small interpreter for every syscall number).
//! Foreign-arch syscalls (i386 `int 0x80` on x86_64) kill the process, so
//! 32-bit binaries need `--insecure-options=seccomp`.

use std::io;

use caps::Capability;

/// Syscalls newer than the `libc` crate's tables; these numbers are shared
/// by every architecture since Linux 5.1's unified numbering.
mod newer {
    pub const CACHESTAT: i64 = 451;
    pub const FUTEX_WAKE: i64 = 454;
    pub const FUTEX_WAIT: i64 = 455;
    pub const FUTEX_REQUEUE: i64 = 456;
    pub const STATMOUNT: i64 = 457;
    pub const LISTMOUNT: i64 = 458;
    pub const LSM_GET_SELF_ATTR: i64 = 459;
    pub const LSM_SET_SELF_ATTR: i64 = 460;
    pub const LSM_LIST_MODULES: i64 = 461;
    pub const SETXATTRAT: i64 = 463;
    pub const GETXATTRAT: i64 = 464;
    pub const LISTXATTRAT: i64 = 465;
    pub const REMOVEXATTRAT: i64 = 466;
    /// Generic number (aarch64); x86_64's libc table has it.
    #[cfg(target_arch = "aarch64")]
    pub const FCHMODAT2: i64 = 452;
    #[cfg(target_arch = "x86_64")]
    pub const IO_PGETEVENTS: i64 = 333;
    #[cfg(target_arch = "aarch64")]
    pub const IO_PGETEVENTS: i64 = 292;
    #[cfg(target_arch = "x86_64")]
    pub const MAP_SHADOW_STACK: i64 = 453;
    #[cfg(target_arch = "x86_64")]
    pub const URETPROBE: i64 = 335;
}

/// Docker's unconditional allowlist, the names both architectures have.
const ALLOW: &[i64] = &[
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_adjtimex,
    libc::SYS_bind,
    libc::SYS_brk,
    libc::SYS_capget,
    libc::SYS_capset,
    libc::SYS_chdir,
    libc::SYS_clock_adjtime,
    libc::SYS_clock_getres,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_connect,
    libc::SYS_copy_file_range,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_eventfd2,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_fadvise64,
    libc::SYS_fallocate,
    libc::SYS_fanotify_mark,
    libc::SYS_fchdir,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_fcntl,
    libc::SYS_fdatasync,
    libc::SYS_fgetxattr,
    libc::SYS_flistxattr,
    libc::SYS_flock,
    libc::SYS_fremovexattr,
    libc::SYS_fsetxattr,
    libc::SYS_fstat,
    libc::SYS_fstatfs,
    libc::SYS_fsync,
    libc::SYS_ftruncate,
    libc::SYS_futex,
    libc::SYS_futex_waitv,
    libc::SYS_getcpu,
    libc::SYS_getcwd,
    libc::SYS_getdents64,
    libc::SYS_getegid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getgroups,
    libc::SYS_getitimer,
    libc::SYS_getpeername,
    libc::SYS_getpgid,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getpriority,
    libc::SYS_getrandom,
    libc::SYS_getresgid,
    libc::SYS_getresuid,
    libc::SYS_getrlimit,
    libc::SYS_get_robust_list,
    libc::SYS_getrusage,
    libc::SYS_getsid,
    libc::SYS_getsockname,
    libc::SYS_getsockopt,
    libc::SYS_gettid,
    libc::SYS_gettimeofday,
    libc::SYS_getuid,
    libc::SYS_getxattr,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_rm_watch,
    libc::SYS_io_cancel,
    libc::SYS_ioctl,
    libc::SYS_io_destroy,
    libc::SYS_io_getevents,
    libc::SYS_ioprio_get,
    libc::SYS_ioprio_set,
    libc::SYS_io_setup,
    libc::SYS_io_submit,
    libc::SYS_kill,
    libc::SYS_landlock_add_rule,
    libc::SYS_landlock_create_ruleset,
    libc::SYS_landlock_restrict_self,
    libc::SYS_lgetxattr,
    libc::SYS_linkat,
    libc::SYS_listen,
    libc::SYS_listxattr,
    libc::SYS_llistxattr,
    libc::SYS_lremovexattr,
    libc::SYS_lseek,
    libc::SYS_lsetxattr,
    libc::SYS_madvise,
    libc::SYS_membarrier,
    libc::SYS_memfd_create,
    libc::SYS_memfd_secret,
    libc::SYS_mincore,
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_mlockall,
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_mq_getsetattr,
    libc::SYS_mq_notify,
    libc::SYS_mq_open,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_unlink,
    libc::SYS_mremap,
    libc::SYS_mseal,
    libc::SYS_msgctl,
    libc::SYS_msgget,
    libc::SYS_msgrcv,
    libc::SYS_msgsnd,
    libc::SYS_msync,
    libc::SYS_munlock,
    libc::SYS_munlockall,
    libc::SYS_munmap,
    libc::SYS_name_to_handle_at,
    libc::SYS_nanosleep,
    libc::SYS_newfstatat,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_pipe2,
    libc::SYS_pkey_alloc,
    libc::SYS_pkey_free,
    libc::SYS_pkey_mprotect,
    libc::SYS_ppoll,
    libc::SYS_prctl,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_preadv2,
    libc::SYS_prlimit64,
    libc::SYS_process_mrelease,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pselect6,
    libc::SYS_ptrace,
    libc::SYS_pwrite64,
    libc::SYS_pwritev,
    libc::SYS_pwritev2,
    libc::SYS_read,
    libc::SYS_readahead,
    libc::SYS_readlinkat,
    libc::SYS_readv,
    libc::SYS_recvfrom,
    libc::SYS_recvmmsg,
    libc::SYS_recvmsg,
    libc::SYS_remap_file_pages,
    libc::SYS_removexattr,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_restart_syscall,
    libc::SYS_rseq,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigsuspend,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_getattr,
    libc::SYS_sched_getparam,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_rr_get_interval,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_setattr,
    libc::SYS_sched_setparam,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_yield,
    libc::SYS_seccomp,
    libc::SYS_semctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_sendfile,
    libc::SYS_sendmmsg,
    libc::SYS_sendmsg,
    libc::SYS_sendto,
    libc::SYS_setfsgid,
    libc::SYS_setfsuid,
    libc::SYS_setgid,
    libc::SYS_setgroups,
    libc::SYS_setitimer,
    libc::SYS_setpgid,
    libc::SYS_setpriority,
    libc::SYS_setregid,
    libc::SYS_setresgid,
    libc::SYS_setresuid,
    libc::SYS_setreuid,
    libc::SYS_setrlimit,
    libc::SYS_set_robust_list,
    libc::SYS_setsid,
    libc::SYS_setsockopt,
    libc::SYS_set_tid_address,
    libc::SYS_setuid,
    libc::SYS_setxattr,
    libc::SYS_shmat,
    libc::SYS_shmctl,
    libc::SYS_shmdt,
    libc::SYS_shmget,
    libc::SYS_shutdown,
    libc::SYS_sigaltstack,
    libc::SYS_signalfd4,
    libc::SYS_socketpair,
    libc::SYS_splice,
    libc::SYS_statfs,
    libc::SYS_statx,
    libc::SYS_symlinkat,
    libc::SYS_sync,
    libc::SYS_sync_file_range,
    libc::SYS_syncfs,
    libc::SYS_sysinfo,
    libc::SYS_tee,
    libc::SYS_tgkill,
    libc::SYS_timer_create,
    libc::SYS_timer_delete,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_gettime,
    libc::SYS_timer_settime,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_gettime,
    libc::SYS_timerfd_settime,
    libc::SYS_times,
    libc::SYS_tkill,
    libc::SYS_truncate,
    libc::SYS_umask,
    libc::SYS_uname,
    libc::SYS_unlinkat,
    libc::SYS_utimensat,
    libc::SYS_vmsplice,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_write,
    libc::SYS_writev,
    newer::CACHESTAT,
    newer::FUTEX_WAKE,
    newer::FUTEX_WAIT,
    newer::FUTEX_REQUEUE,
    newer::STATMOUNT,
    newer::LISTMOUNT,
    newer::SETXATTRAT,
    newer::GETXATTRAT,
    newer::LISTXATTRAT,
    newer::REMOVEXATTRAT,
    newer::IO_PGETEVENTS,
];

/// The legacy syscalls x86_64 still has (aarch64 only has their `*at` forms).
#[cfg(target_arch = "x86_64")]
const ALLOW_ARCH: &[i64] = &[
    libc::SYS_access,
    libc::SYS_alarm,
    libc::SYS_arch_prctl,
    libc::SYS_chmod,
    libc::SYS_chown,
    libc::SYS_creat,
    libc::SYS_dup2,
    libc::SYS_epoll_create,
    libc::SYS_epoll_ctl_old,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_wait_old,
    libc::SYS_eventfd,
    libc::SYS_fchmodat2,
    libc::SYS_fork,
    libc::SYS_futimesat,
    libc::SYS_getdents,
    libc::SYS_getpgrp,
    libc::SYS_get_thread_area,
    libc::SYS_inotify_init,
    libc::SYS_lchown,
    libc::SYS_link,
    libc::SYS_lstat,
    libc::SYS_mkdir,
    libc::SYS_mknod,
    libc::SYS_modify_ldt,
    libc::SYS_open,
    libc::SYS_pause,
    libc::SYS_pipe,
    libc::SYS_poll,
    libc::SYS_readlink,
    libc::SYS_rename,
    libc::SYS_rmdir,
    libc::SYS_select,
    libc::SYS_set_thread_area,
    libc::SYS_signalfd,
    libc::SYS_stat,
    libc::SYS_symlink,
    libc::SYS_time,
    libc::SYS_unlink,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_vfork,
    newer::MAP_SHADOW_STACK,
    newer::URETPROBE,
];

#[cfg(target_arch = "aarch64")]
const ALLOW_ARCH: &[i64] = &[newer::FCHMODAT2];

/// Syscalls Docker allows only to an app holding the capability.
fn by_capability(cap: Capability) -> &'static [i64] {
    use Capability::*;
    match cap {
        CAP_SYS_ADMIN => &[
            libc::SYS_bpf,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_fanotify_init,
            libc::SYS_fsconfig,
            libc::SYS_fsmount,
            libc::SYS_fsopen,
            libc::SYS_fspick,
            libc::SYS_lookup_dcookie,
            libc::SYS_mount,
            libc::SYS_mount_setattr,
            libc::SYS_move_mount,
            libc::SYS_open_tree,
            libc::SYS_perf_event_open,
            libc::SYS_quotactl,
            libc::SYS_quotactl_fd,
            libc::SYS_setdomainname,
            libc::SYS_sethostname,
            libc::SYS_setns,
            libc::SYS_syslog,
            libc::SYS_umount2,
            libc::SYS_unshare,
            newer::LSM_GET_SELF_ATTR,
            newer::LSM_SET_SELF_ATTR,
            newer::LSM_LIST_MODULES,
        ],
        CAP_SYS_BOOT => &[libc::SYS_reboot],
        CAP_SYS_CHROOT => &[libc::SYS_chroot],
        CAP_SYS_MODULE => &[
            libc::SYS_delete_module,
            libc::SYS_init_module,
            libc::SYS_finit_module,
        ],
        CAP_SYS_PACCT => &[libc::SYS_acct],
        CAP_SYS_PTRACE => &[
            libc::SYS_kcmp,
            libc::SYS_pidfd_getfd,
            libc::SYS_process_madvise,
        ],
        #[cfg(target_arch = "x86_64")]
        CAP_SYS_RAWIO => &[libc::SYS_iopl, libc::SYS_ioperm],
        CAP_SYS_TIME => &[libc::SYS_settimeofday, libc::SYS_clock_settime],
        CAP_SYS_TTY_CONFIG => &[libc::SYS_vhangup],
        CAP_SYS_NICE => &[
            libc::SYS_get_mempolicy,
            libc::SYS_mbind,
            libc::SYS_set_mempolicy,
            libc::SYS_set_mempolicy_home_node,
        ],
        CAP_SYSLOG => &[libc::SYS_syslog],
        CAP_BPF => &[libc::SYS_bpf],
        CAP_PERFMON => &[libc::SYS_perf_event_open],
        CAP_DAC_READ_SEARCH => &[libc::SYS_open_by_handle_at],
        _ => &[],
    }
}

/// The namespace flags `clone` may not carry without CAP_SYS_ADMIN:
/// CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
const CLONE_NAMESPACES: u32 = 0x7E02_0000;
/// Socket families Docker refuses: AF_ALG and AF_VSOCK.
const AF_ALG: u32 = 38;
const AF_VSOCK: u32 = 40;
/// The `personality` values Docker allows: PER_LINUX, PER_LINUX32,
/// UNAME26, PER_LINUX32|UNAME26, and the query 0xffffffff.
const PERSONALITIES: &[u32] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
const RET_KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

/// Offsets in `struct seccomp_data`; an argument's low 32 bits (the
/// architectures above are little-endian, and every argument checked here
/// is 32-bit in the kernel).
const NR: u32 = 0;
const ARCH: u32 = 4;
const fn arg_low(i: u32) -> u32 {
    16 + 8 * i
}

/// What the filter answers for one syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allow,
    Enosys,
    /// `clone` without namespace flags.
    CloneNoNamespaces,
    /// `socket` of any family but AF_ALG and AF_VSOCK.
    SocketFamilies,
    /// `personality` with one of [`PERSONALITIES`].
    Personalities,
}

/// The rules for an app holding `caps`, sorted by syscall number.
fn rules(caps: &[Capability]) -> Vec<(u32, Verdict)> {
    let mut r: Vec<(u32, Verdict)> = ALLOW
        .iter()
        .chain(ALLOW_ARCH)
        .chain(caps.iter().flat_map(|c| by_capability(*c)))
        .map(|nr| (*nr as u32, Verdict::Allow))
        .collect();
    if !caps.contains(&Capability::CAP_SYS_ADMIN) {
        r.push((libc::SYS_clone as u32, Verdict::CloneNoNamespaces));
        r.push((libc::SYS_clone3 as u32, Verdict::Enosys));
    }
    r.push((libc::SYS_socket as u32, Verdict::SocketFamilies));
    r.push((libc::SYS_personality as u32, Verdict::Personalities));
    r.sort_by_key(|(nr, _)| *nr);
    r.dedup_by_key(|(nr, _)| *nr);
    r
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

const LD_ABS: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const JSET: u32 = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;
const JA: u32 = libc::BPF_JMP | libc::BPF_JA;
const RET: u32 = libc::BPF_RET | libc::BPF_K;

/// The code for one syscall once its number matched (the accumulator is
/// then clobbered, which is fine: every path ends in a return).
fn verdict_code(v: Verdict, out: &mut Vec<libc::sock_filter>) {
    match v {
        Verdict::Allow => out.push(stmt(RET, RET_ALLOW)),
        Verdict::Enosys => out.push(stmt(RET, RET_ENOSYS)),
        Verdict::CloneNoNamespaces => {
            out.push(stmt(LD_ABS, arg_low(0)));
            out.push(jump(JSET, CLONE_NAMESPACES, 0, 1));
            out.push(stmt(RET, RET_EPERM));
            out.push(stmt(RET, RET_ALLOW));
        }
        Verdict::SocketFamilies => {
            out.push(stmt(LD_ABS, arg_low(0)));
            out.push(jump(JEQ, AF_ALG, 1, 0));
            out.push(jump(JEQ, AF_VSOCK, 0, 1));
            out.push(stmt(RET, RET_EPERM));
            out.push(stmt(RET, RET_ALLOW));
        }
        Verdict::Personalities => {
            out.push(stmt(LD_ABS, arg_low(0)));
            for p in PERSONALITIES {
                out.push(jump(JEQ, *p, 0, 1));
                out.push(stmt(RET, RET_ALLOW));
            }
            out.push(stmt(RET, RET_EPERM));
        }
    }
}

/// The rules as a partition of all syscall numbers into runs with one
/// answer each (`None`: refused), by first number. Consecutive allowed
/// syscalls collapse into one run, which keeps the program small.
fn runs(rules: &[(u32, Verdict)]) -> Vec<(u32, Option<Verdict>)> {
    fn push(out: &mut Vec<(u32, Option<Verdict>)>, start: u32, v: Option<Verdict>) {
        if out.last().map(|(_, last)| *last) != Some(v) {
            out.push((start, v));
        }
    }
    let mut out = Vec::new();
    let mut next = 0u32;
    for (nr, v) in rules {
        if *nr > next {
            push(&mut out, next, None);
        }
        push(&mut out, *nr, Some(*v));
        next = nr + 1;
    }
    push(&mut out, next, None);
    out
}

/// Emits a binary search over `runs` with the syscall number in the
/// accumulator: each step compares with the first number of the upper
/// half. Conditional jumps reach 255 instructions ahead; a larger lower
/// half is skipped through an unconditional jump.
fn search(runs: &[(u32, Option<Verdict>)], out: &mut Vec<libc::sock_filter>) {
    if let [(_, v)] = runs {
        match v {
            Some(v) => verdict_code(*v, out),
            None => out.push(stmt(RET, RET_EPERM)),
        }
        return;
    }
    let (low, high) = runs.split_at(runs.len() / 2);
    let mut lower = Vec::new();
    search(low, &mut lower);
    match u8::try_from(lower.len()) {
        Ok(skip) => out.push(jump(JGE, high[0].0, skip, 0)),
        Err(_) => {
            out.push(jump(JGE, high[0].0, 0, 1));
            out.push(stmt(JA, lower.len() as u32));
        }
    }
    out.extend(lower);
    search(high, out);
}

/// A compiled filter set, ready to install (in order) in the app's process.
#[derive(Debug, Clone)]
pub struct Filter {
    program: Vec<libc::sock_filter>,
}

impl Filter {
    /// Docker's default profile for an app holding `caps`.
    pub fn default_profile(caps: &[Capability]) -> Result<Filter, super::FlagError> {
        let mut program = vec![
            stmt(LD_ABS, ARCH),
            jump(JEQ, AUDIT_ARCH, 1, 0),
            stmt(RET, RET_KILL),
            stmt(LD_ABS, NR),
        ];
        search(&runs(&rules(caps)), &mut program);
        if program.len() >= libc::BPF_MAXINSNS as usize {
            return Err(super::FlagError::SeccompTooLarge(program.len()));
        }
        Ok(Filter { program })
    }

    /// Installs the filter in the calling thread. Needs `no_new_privs` or
    /// CAP_SYS_ADMIN; call it before dropping capabilities.
    pub fn install(&self) -> io::Result<()> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: the kernel copies the program from a valid sock_fprog
        // that points into `self.program`, which outlives the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Instructions in the program (for `--debug`).
    pub fn len(&self) -> usize {
        self.program.len()
    }

    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic-BPF seccomp program on one `seccomp_data`, checking
    /// every jump stays inside the program.
    fn eval(prog: &[libc::sock_filter], nr: u32, arch: u32, args: [u32; 6]) -> u32 {
        let load = |off: u32| -> u32 {
            match off {
                NR => nr,
                ARCH => arch,
                o if o >= 16 && (o - 16) % 8 == 0 => args[((o - 16) / 8) as usize],
                o => panic!("load at {o}"),
            }
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            let code = u32::from(i.code);
            pc += 1;
            match code {
                c if c == LD_ABS => acc = load(i.k),
                c if c == RET => return i.k,
                c if c == JA => pc += i.k as usize,
                c if c == JEQ || c == JGE || c == JSET => {
                    let taken = match c {
                        c if c == JEQ => acc == i.k,
                        c if c == JGE => acc >= i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                c => panic!("unexpected opcode {c:#x}"),
            }
            assert!(pc < prog.len(), "jump out of the program");
        }
    }

    fn verdict(f: &Filter, nr: i64, args: [u32; 6]) -> u32 {
        eval(&f.program, nr as u32, AUDIT_ARCH, args)
    }

    #[test]
    fn every_syscall_number_gets_the_profiles_answer() {
        for caps in [
            crate::stage1::caps::DEFAULT.to_vec(),
            vec![Capability::CAP_SYS_ADMIN],
            vec![],
        ] {
            let f = Filter::default_profile(&caps).unwrap();
            let table = rules(&caps);
            for nr in 0..1024u32 {
                let want = match table.iter().find(|(n, _)| *n == nr).map(|(_, v)| *v) {
                    None => RET_EPERM,
                    Some(Verdict::Enosys) => RET_ENOSYS,
                    Some(_) => RET_ALLOW,
                };
                // Argument-checked syscalls allow their plain forms.
                assert_eq!(eval(&f.program, nr, AUDIT_ARCH, [0; 6]), want, "nr {nr}");
            }
            // x32 numbers on x86_64, and other architectures.
            assert_eq!(verdict(&f, 0x4000_0000 | libc::SYS_read, [0; 6]), RET_EPERM);
            assert_eq!(eval(&f.program, 0, 0x4000_0003, [0; 6]), RET_KILL);
        }
    }

    #[test]
    fn docker_defaults_and_argument_checks() {
        let f = Filter::default_profile(crate::stage1::caps::DEFAULT).unwrap();
        for nr in [
            libc::SYS_mount,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_bpf,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_request_key,
            libc::SYS_kexec_load,
            libc::SYS_init_module,
            libc::SYS_umount2,
            libc::SYS_pivot_root,
        ] {
            assert_eq!(verdict(&f, nr, [0; 6]), RET_EPERM, "{nr}");
        }
        assert_eq!(verdict(&f, libc::SYS_read, [0; 6]), RET_ALLOW);
        assert_eq!(verdict(&f, libc::SYS_chroot, [0; 6]), RET_ALLOW);
        assert_eq!(verdict(&f, libc::SYS_clone3, [0; 6]), RET_ENOSYS);
        let fork_flags = (libc::CLONE_CHILD_SETTID | libc::SIGCHLD) as u32;
        assert_eq!(
            verdict(&f, libc::SYS_clone, [fork_flags, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        for ns in [libc::CLONE_NEWUSER, libc::CLONE_NEWNET, libc::CLONE_NEWNS] {
            let flags = fork_flags | ns as u32;
            assert_eq!(
                verdict(&f, libc::SYS_clone, [flags, 0, 0, 0, 0, 0]),
                RET_EPERM
            );
        }
        assert_eq!(verdict(&f, libc::SYS_socket, [2, 1, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            verdict(&f, libc::SYS_socket, [16, 3, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            verdict(&f, libc::SYS_socket, [40, 1, 0, 0, 0, 0]),
            RET_EPERM
        );
        assert_eq!(
            verdict(&f, libc::SYS_socket, [38, 5, 0, 0, 0, 0]),
            RET_EPERM
        );
        assert_eq!(
            verdict(&f, libc::SYS_personality, [8, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            verdict(&f, libc::SYS_personality, [0x0040_0000, 0, 0, 0, 0, 0]),
            RET_EPERM
        );
        // CAP_SYS_ADMIN brings mount, unshare and namespace clones back.
        let admin = Filter::default_profile(&[Capability::CAP_SYS_ADMIN]).unwrap();
        assert_eq!(verdict(&admin, libc::SYS_mount, [0; 6]), RET_ALLOW);
        let flags = fork_flags | libc::CLONE_NEWUSER as u32;
        assert_eq!(
            verdict(&admin, libc::SYS_clone, [flags, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(verdict(&admin, libc::SYS_clone3, [0; 6]), RET_ALLOW);
        assert_eq!(verdict(&admin, libc::SYS_keyctl, [0; 6]), RET_EPERM);
        assert!(f.len() < 400, "{} instructions", f.len());
    }

    #[test]
    fn no_syscall_is_listed_twice_in_the_base_lists() {
        let mut all: Vec<i64> = ALLOW.iter().chain(ALLOW_ARCH).copied().collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
