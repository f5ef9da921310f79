//! Finding every process a stage started, wherever it went, so none outlives the stage.
//!
//! A stage's processes can leave its process group (`set -m`, GNU `timeout`, `setpgid`) or its
//! session (`setsid`, daemons that fork twice), and then a signal to the group misses them. On
//! Linux, gzl makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`) while it runs stages: a
//! process whose parent dies is adopted by gzl instead of by init, so everything a stage ever
//! started descends from gzl, and its parent links in `/proc/PID/stat` lead back to gzl.
//!
//! Each of gzl's children is either a stage's process (whose subtree is that stage's), a
//! program gzl runs itself (git, in gzl's own process group, or a `--debug` shell, which is
//! [spared](run_spared)), or an orphan gzl adopted. An orphan belongs to the stage named by
//! the first process on its line of descent, from gzl down, that says whose it is: by the
//! run's `GZL_TOKEN` with a `GZL_STAGE` in the environment it started with, or else by sitting
//! in a process group a stage's first process led. What clears its environment and leaves its
//! group (`env -i setsid …`) is unclaimed: it ends with the stage that sweeps while no other
//! stage runs, and at the latest with the run.
//!
//! Adopted orphans that exit are zombies of gzl, which [`Reaper`] waits for by pid, never with
//! `waitpid(-1)`: tokio and `std::process` wait for their own children by pid, and a reaper
//! taking any child would steal their exit statuses.
//!
//! Elsewhere (no `/proc`, no subreaper) only the process group is signalled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::watch;

use super::Cancel;

/// Between two looks at what is left of a run while its processes end.
const POLL: Duration = Duration::from_millis(10);

/// After SIGKILL, how long the run's end waits for what it killed to be gone.
const AFTER_KILL: Duration = Duration::from_secs(1);

/// Orphans that exit are reaped at most this often (each pass reads `/proc`).
const REAP_EVERY: Duration = Duration::from_secs(1);

/// Pids the kernel hands out in a second, at most, with room to spare: a stage shorter than
/// `pid_max` divided by this cannot have seen the pids wrap around.
const MAX_PIDS_PER_SECOND: u64 = 1_000_000;

/// Above this many pids to look at, list `/proc` instead of trying each.
const PROBE_MAX: i64 = 128;

/// Children gzl runs itself while stages run (a `--debug` shell): never swept, never reaped.
static SPARED: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Runs `command` to its end as a child gzl waits for itself: the sweeps of a run that goes
/// on meanwhile leave it and its exit status alone.
pub fn run_spared(
    command: &mut std::process::Command,
) -> std::io::Result<std::process::ExitStatus> {
    let mut child = {
        // Held across the spawn, so no reaper pass can see the child before it is spared.
        let mut spared = lock(&SPARED);
        let child = command.spawn()?;
        spared.push(i32::try_from(child.id()).unwrap_or(0));
        child
    };
    let status = child.wait();
    let pid = i32::try_from(child.id()).unwrap_or(0);
    lock(&SPARED).retain(|&p| p != pid);
    status
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One process, as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, Copy)]
struct Proc {
    ppid: i32,
    pgid: i32,
    zombie: bool,
}

/// The processes one look at `/proc` found, by pid.
type Table = HashMap<i32, Proc>;

/// A stage of one of the runs this gzl runs (`gzl bisect -j` runs several at once).
type StageId = (u64, String);

/// Who a process belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    Stage(StageId),
    /// Started by the run, but nothing says which stage.
    Unclaimed,
    /// Not a stage's: gzl's own child (git, a spared shell), or no descendant of gzl.
    NotOurs,
}

/// Which live processes a sweep picks, by owner, given what the reaper knows.
type Wanted<'a> = dyn Fn(&Owner, &State) -> bool + 'a;

/// What gzl knows of the stages of every run it runs. One for the whole process: the
/// subreaper adopts every run's orphans, and one run's sweep must know another run's
/// processes for what they are, never for unclaimed ones of its own.
#[derive(Default)]
struct State {
    /// Each run's `GZL_TOKEN`, which its stages' processes carry, to the run.
    tokens: HashMap<String, u64>,
    /// Stage processes gzl started and tokio has not waited for yet.
    roots: HashMap<i32, StageId>,
    /// Every process group a stage's process led.
    groups: HashMap<i32, StageId>,
    /// Stages started and not yet ended, in all runs.
    running: usize,
    /// Stages being started, in all runs: their first process may exist before it is
    /// registered, and then looks unclaimed.
    starting: usize,
    /// Runs going on in this process.
    runs: usize,
}

static STATE: LazyLock<Mutex<State>> = LazyLock::new(Mutex::default);

/// Numbers the runs of this process, for [`StageId`].
static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

/// Keeps track of a run's stages' processes, and ends what they leave behind.
pub(super) struct Reaper {
    run: u64,
    me: i32,
    my_group: i32,
    /// Whether gzl adopts orphans (Linux): then everything a stage started descends from gzl.
    subreaper: bool,
    /// The run's `GZL_TOKEN`, once a stage has shown it.
    token: Mutex<Option<String>>,
}

impl Reaper {
    /// A reaper for one run; on Linux, gzl becomes a child subreaper (for the rest of its life).
    pub fn new() -> Reaper {
        #[cfg(target_os = "linux")]
        let subreaper = match nix::sys::prctl::set_child_subreaper(true) {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, "cannot become a child subreaper");
                false
            }
        };
        #[cfg(not(target_os = "linux"))]
        let subreaper = false;
        lock(&STATE).runs += 1;
        Reaper {
            run: NEXT_RUN.fetch_add(1, Ordering::Relaxed),
            me: std::process::id().try_into().unwrap_or(0),
            my_group: nix::unistd::getpgrp().as_raw(),
            subreaper,
            token: Mutex::new(None),
        }
    }

    /// Says a stage's process is about to be started: until the returned guard is dropped
    /// (after [`Reaper::started`]), no sweep takes an unclaimed process for an orphan of
    /// another stage, since it may be that new process (or its first child) not yet
    /// registered.
    pub fn starting(&self) -> Starting {
        lock(&STATE).starting += 1;
        Starting
    }

    /// Registers the process gzl just started for stage `name`, which leads its own group.
    /// `token` is the run's `GZL_TOKEN`, when the stage has one.
    pub fn started(&self, name: &str, token: Option<&str>, root: i32) -> StageProcesses<'_> {
        let id = (self.run, name.to_string());
        let mut state = lock(&STATE);
        if let Some(token) = token {
            state.tokens.insert(token.to_string(), self.run);
            lock(&self.token).get_or_insert_with(|| token.to_string());
        }
        state.roots.insert(root, id.clone());
        state.groups.insert(root, id);
        state.running += 1;
        StageProcesses {
            reaper: self,
            name: name.to_string(),
            root,
            started: Instant::now(),
        }
    }

    /// Looks at `/proc` (the part `scope` says), reaps adopted orphans that exited, and
    /// returns the live processes `wanted` picks by owner (none without it).
    fn sweep(&self, scope: Scope, wanted: Option<&Wanted<'_>>) -> Vec<i32> {
        let table = scan(scope);
        if table.is_empty() {
            return Vec::new();
        }
        // Held while reaping, so that a spared child being started waits (see `run_spared`).
        let spared = lock(&SPARED);
        let state = lock(&STATE);
        let view = View {
            me: self.me,
            my_group: self.my_group,
            table: &table,
            roots: &state.roots,
            groups: &state.groups,
            spared: &spared,
            tokens: &state.tokens,
        };
        let mut owners = HashMap::new();
        let mut found = Vec::new();
        for (&pid, process) in &table {
            if process.zombie {
                // An adopted orphan that exited: nobody but gzl will wait for it. Stage
                // processes tokio waits for, and gzl's own children, are left alone.
                if process.ppid == self.me
                    && !state.roots.contains_key(&pid)
                    && process.pgid != self.my_group
                    && !spared.contains(&pid)
                {
                    reap(pid);
                }
                continue;
            }
            if let Some(wanted) = wanted
                && pid != self.me
                && wanted(&view.owner(pid, &mut owners), &state)
            {
                found.push(pid);
            }
        }
        found
    }

    /// Waits for adopted orphans as they exit; never returns.
    pub async fn reap_orphans(&self) {
        use tokio::signal::unix::{SignalKind, signal};
        if !self.subreaper {
            return std::future::pending().await;
        }
        let Ok(mut exits) = signal(SignalKind::child()) else {
            return std::future::pending().await;
        };
        let mut last = tokio::time::Instant::now();
        while exits.recv().await.is_some() {
            tokio::time::sleep_until(last + REAP_EVERY).await;
            last = tokio::time::Instant::now();
            self.sweep(Scope::All, None);
        }
        std::future::pending().await
    }

    /// Ends whatever the run's stages left (SIGTERM, then SIGKILL after `grace`, or at once
    /// when `cancel` asks for it), once every stage has ended.
    pub async fn end_run(&self, grace: Duration, cancel: watch::Receiver<Cancel>) {
        self.end_descendants(grace, cancel).await;
        // Without a subreaper, orphans went to init: the run's token is all that finds them.
        if !self.subreaper
            && let Some(token) = lock(&self.token).clone()
        {
            kill_abandoned(&token);
        }
    }

    async fn end_descendants(&self, grace: Duration, mut cancel: watch::Receiver<Cancel>) {
        let left = |reaper: &Reaper| {
            reaper.sweep(
                Scope::All,
                Some(&|owner: &Owner, state: &State| match owner {
                    Owner::Stage((run, _)) => *run == reaper.run,
                    // Another run of this gzl may have started it: the last run ends it.
                    Owner::Unclaimed => state.runs == 1 && state.starting == 0,
                    Owner::NotOurs => false,
                }),
            )
        };
        let found = left(self);
        if found.is_empty() {
            return;
        }
        tracing::debug!(
            count = found.len(),
            "ending what the run's stages left running"
        );
        signal_all(&found, Signal::SIGTERM);
        let kill_at = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < kill_at && *cancel.borrow() != Cancel::Now {
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                changed = cancel.changed() => if changed.is_err() { break },
            }
            if left(self).is_empty() {
                return;
            }
        }
        let give_up = tokio::time::Instant::now() + AFTER_KILL;
        loop {
            let found = left(self);
            if found.is_empty() || tokio::time::Instant::now() >= give_up {
                break;
            }
            signal_all(&found, Signal::SIGKILL);
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let mut state = lock(&STATE);
        let run = self.run;
        state.tokens.retain(|_, r| *r != run);
        state.groups.retain(|_, (r, _)| *r != run);
        state.runs = state.runs.saturating_sub(1);
    }
}

/// A stage's process being started (see [`Reaper::starting`]).
pub(super) struct Starting;

impl Drop for Starting {
    fn drop(&mut self) {
        let mut state = lock(&STATE);
        state.starting = state.starting.saturating_sub(1);
    }
}

/// One stage's processes, from its start to its end.
pub(super) struct StageProcesses<'a> {
    reaper: &'a Reaper,
    name: String,
    root: i32,
    started: Instant,
}

impl StageProcesses<'_> {
    /// The stage's first process has been waited for: its pid is no longer gzl's to spare.
    pub fn reaped(&self) {
        lock(&STATE).roots.remove(&self.root);
    }

    /// Sends `signal` to every live process of the stage (its group and all that left it),
    /// and returns how many were found. With `None`, only counts them.
    pub fn signal(&self, signal: Option<Signal>) -> usize {
        let scope = Scope::since(self.root, self.started);
        let wanted = |owner: &Owner, state: &State| match owner {
            Owner::Stage((run, name)) => *run == self.reaper.run && *name == self.name,
            // With no other stage running or starting, nobody else can have started it.
            Owner::Unclaimed => state.running == 1 && state.starting == 0,
            Owner::NotOurs => false,
        };
        let found = self.reaper.sweep(scope, Some(&wanted));
        // Never group 0, which would be gzl's own.
        let group = (self.root > 1).then(|| Pid::from_raw(self.root));
        if let Some(signal) = signal {
            if let Some(group) = group {
                let _ = nix::sys::signal::killpg(group, signal);
            }
            signal_all(&found, signal);
        }
        let group_alive = group.is_some_and(|group| nix::sys::signal::killpg(group, None).is_ok());
        found.len().max(usize::from(group_alive))
    }
}

impl Drop for StageProcesses<'_> {
    fn drop(&mut self) {
        let mut state = lock(&STATE);
        state.roots.remove(&self.root);
        state.running = state.running.saturating_sub(1);
    }
}

fn signal_all(pids: &[i32], signal: Signal) {
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

fn reap(pid: i32) {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
}

/// The processes of stage `stage` of the run whose gzl is `runner`, seen from another
/// process (`gzl stop`): those descending from `runner` that belong to the stage, and any
/// other process carrying the stage's markers.
pub fn stage_processes(runner: u32, token: &str, stage: &str, group: i32) -> Vec<i32> {
    let table = scan(Scope::All);
    let Ok(me) = i32::try_from(runner) else {
        return Vec::new();
    };
    let Some(runner_process) = table.get(&me) else {
        return Vec::new();
    };
    let roots = HashMap::new();
    let groups = HashMap::from([(group, (0, stage.to_string()))]);
    let tokens = HashMap::from([(token.to_string(), 0)]);
    let spared = Vec::new();
    let view = View {
        me,
        my_group: runner_process.pgid,
        table: &table,
        roots: &roots,
        groups: &groups,
        spared: &spared,
        tokens: &tokens,
    };
    let mut owners = HashMap::new();
    let wanted = Owner::Stage((0, stage.to_string()));
    table
        .iter()
        .filter(|&(&pid, process)| {
            pid != me
                && !process.zombie
                && (view.owner(pid, &mut owners) == wanted
                    || marker(pid).is_some_and(|(t, name)| t == token && name == stage))
        })
        .map(|(&pid, _)| pid)
        .collect()
}

/// How processes are told apart, for one look at `/proc`.
struct View<'a> {
    me: i32,
    my_group: i32,
    table: &'a Table,
    roots: &'a HashMap<i32, StageId>,
    groups: &'a HashMap<i32, StageId>,
    spared: &'a [i32],
    /// The `GZL_TOKEN` of each run, to the run.
    tokens: &'a HashMap<String, u64>,
}

impl View<'_> {
    /// Who `pid` belongs to; `known` remembers the answers for its ancestors.
    fn owner(&self, pid: i32, known: &mut HashMap<i32, Owner>) -> Owner {
        // Up the line of descent to a process whose owner is known, or to gzl's child.
        let mut line = Vec::new();
        let mut current = pid;
        let mut owner = loop {
            if let Some(owner) = known.get(&current) {
                break owner.clone();
            }
            let Some(process) = self.table.get(&current) else {
                // An ancestor this look did not read: older than the stage, or not gzl's.
                break Owner::NotOurs;
            };
            line.push(current);
            if process.ppid == self.me {
                break Owner::Unclaimed;
            }
            if process.ppid <= 1 || line.len() > self.table.len() {
                break Owner::NotOurs;
            }
            current = process.ppid;
        };
        // Back down: the first process that says whose it is decides for those below it.
        for &pid in line.iter().rev() {
            if owner == Owner::Unclaimed {
                owner = self.evidence(pid);
            }
            known.insert(pid, owner.clone());
        }
        owner
    }

    /// What `pid` itself says about its owner.
    fn evidence(&self, pid: i32) -> Owner {
        let Some(process) = self.table.get(&pid) else {
            return Owner::NotOurs;
        };
        if process.ppid == self.me {
            if let Some(name) = self.roots.get(&pid) {
                return Owner::Stage(name.clone());
            }
            if process.pgid == self.my_group || self.spared.contains(&pid) {
                return Owner::NotOurs;
            }
        }
        if let Some((token, name)) = marker(pid)
            && let Some(&run) = self.tokens.get(&token)
        {
            return Owner::Stage((run, name));
        }
        match self.groups.get(&process.pgid) {
            Some(name) => Owner::Stage(name.clone()),
            None => Owner::Unclaimed,
        }
    }
}

/// The `GZL_TOKEN` and `GZL_STAGE` of the environment `pid` started with, when it has both.
fn marker(pid: i32) -> Option<(String, String)> {
    let (token, stage) = markers(pid);
    token.zip(stage)
}

/// The `GZL_TOKEN` and the `GZL_STAGE` of the environment `pid` started with.
fn markers(pid: i32) -> (Option<String>, Option<String>) {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return (None, None);
    };
    let mut token = None;
    let mut stage = None;
    for variable in environ.split(|&b| b == 0) {
        if let Some(value) = variable.strip_prefix(b"GZL_TOKEN=") {
            token = std::str::from_utf8(value).ok().map(str::to_string);
        } else if let Some(value) = variable.strip_prefix(b"GZL_STAGE=") {
            stage = std::str::from_utf8(value).ok().map(str::to_string);
        }
    }
    (token, stage)
}

/// Which pids a look at `/proc` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    All,
    /// Pids handed out from `first` on: a stage's processes all started after its first.
    Since(i32),
}

impl Scope {
    /// The processes stage `root`, started at `started`, can have: those whose pid came after
    /// its own, unless it ran long enough for the kernel's pids to wrap around.
    fn since(root: i32, started: Instant) -> Scope {
        let cycle = Duration::from_secs_f64(pid_max() as f64 / MAX_PIDS_PER_SECOND as f64);
        if started.elapsed() < cycle {
            Scope::Since(root)
        } else {
            Scope::All
        }
    }
}

fn pid_max() -> i64 {
    static PID_MAX: OnceLock<i64> = OnceLock::new();
    *PID_MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|text| text.trim().parse().ok())
            // The smallest default, so the shortest wrap-around.
            .unwrap_or(32_768)
    })
}

/// The pid the kernel handed out last, from `/proc/loadavg`.
fn last_pid() -> Option<i64> {
    let mut buffer = [0u8; 256];
    let text = std::str::from_utf8(read_small("/proc/loadavg", &mut buffer)?).ok()?;
    text.split_whitespace().nth(4)?.parse().ok()
}

/// Reads the processes `scope` covers from `/proc`; none where there is no `/proc`.
fn scan(scope: Scope) -> Table {
    let mut table = Table::new();
    let range = match scope {
        Scope::All => None,
        Scope::Since(first) => last_pid().map(|last| (i64::from(first), last)),
    };
    // Pids from `first` to `last`, wrapping around at pid_max.
    let in_range = |pid: i64| match range {
        None => true,
        Some((first, last)) if first <= last => (first..=last).contains(&pid),
        Some((first, last)) => pid >= first || pid <= last,
    };
    if let Some((first, last)) = range
        && first <= last
        && last - first < PROBE_MAX
    {
        for pid in first..=last {
            let Ok(pid) = i32::try_from(pid) else {
                continue;
            };
            if let Some(process) = read_stat(pid) {
                table.insert(pid, process);
            }
        }
        return table;
    }
    for pid in all_pids() {
        if in_range(i64::from(pid))
            && let Some(process) = read_stat(pid)
        {
            table.insert(pid, process);
        }
    }
    table
}

/// The pids `/proc` lists (none elsewhere).
fn all_pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
}

/// Kills every process still running for a run whose gzl died, so nobody stopped its
/// stages. Stage processes are recognised by the run's `GZL_TOKEN` in the environment they
/// started with (children inherit it); Linux only, where `/proc` shows it.
pub fn kill_abandoned(token: &str) {
    if token.is_empty() {
        return;
    }
    for pid in all_pids() {
        if markers(pid).0.is_some_and(|t| t == token) {
            tracing::debug!(pid, "killing a process left by an interrupted run");
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

fn read_stat(pid: i32) -> Option<Proc> {
    let mut buffer = [0u8; 1024];
    parse_stat(read_small(&format!("/proc/{pid}/stat"), &mut buffer)?)
}

/// Reads a small `/proc` file in one `read`, with fewer system calls than `fs::read` (which
/// also asks for the size): a look at a stage's processes is mostly these.
fn read_small<'b>(path: &str, buffer: &'b mut [u8]) -> Option<&'b [u8]> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).ok()?;
    let mut length = 0;
    while length < buffer.len() {
        match file.read(&mut buffer[length..]) {
            Ok(0) => break,
            Ok(n) => length += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(&buffer[..length])
}

fn parse_stat(stat: &[u8]) -> Option<Proc> {
    // The command name, in parentheses, may hold anything: the fields follow the last `)`.
    let end = stat.iter().rposition(|&b| b == b')')?;
    let mut fields = stat[end + 1..]
        .split(u8::is_ascii_whitespace)
        .filter(|field| !field.is_empty());
    let state = fields.next()?;
    let mut number = || -> Option<i32> { std::str::from_utf8(fields.next()?).ok()?.parse().ok() };
    let ppid = number()?;
    let pgid = number()?;
    Some(Proc {
        ppid,
        pgid,
        zombie: matches!(state, b"Z" | b"X"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Pids above any pid_max, so that no /proc entry (and no environment) exists for them.
    const ME: i32 = 90_000_000;
    const ROOT: i32 = ME + 1;

    fn stage(name: &str) -> StageId {
        (1, name.to_string())
    }

    fn process(ppid: i32, pgid: i32) -> Proc {
        Proc {
            ppid,
            pgid,
            zombie: false,
        }
    }

    fn owners(table: &Table, spared: &[i32]) -> HashMap<i32, Owner> {
        let roots = HashMap::from([(ROOT, stage("a"))]);
        let groups = HashMap::from([(ROOT, stage("a")), (ME + 50, stage("b"))]);
        let tokens = HashMap::from([("token".to_string(), 1)]);
        let view = View {
            me: ME,
            my_group: 7,
            table,
            roots: &roots,
            groups: &groups,
            spared,
            tokens: &tokens,
        };
        let mut known = HashMap::new();
        table
            .keys()
            .map(|&pid| (pid, view.owner(pid, &mut known)))
            .collect()
    }

    #[test]
    fn a_stage_s_subtree_is_the_stage_s_wherever_its_processes_went() {
        // The first process, a child in a group of its own, and its child in a new session.
        let table = Table::from([
            (ROOT, process(ME, ROOT)),
            (ME + 2, process(ROOT, ME + 2)),
            (ME + 3, process(ME + 2, ME + 3)),
        ]);
        let owners = owners(&table, &[]);
        for pid in [ROOT, ME + 2, ME + 3] {
            assert_eq!(owners[&pid], Owner::Stage(stage("a")), "pid {pid}");
        }
    }

    #[test]
    fn an_orphan_belongs_to_the_stage_whose_group_it_sits_in() {
        // Adopted by gzl, no environment to read, but still in stage b's group; its child
        // moved to a group of its own.
        let table = Table::from([
            (ME + 60, process(ME, ME + 50)),
            (ME + 61, process(ME + 60, ME + 61)),
        ]);
        let owners = owners(&table, &[]);
        assert_eq!(owners[&(ME + 60)], Owner::Stage(stage("b")));
        assert_eq!(owners[&(ME + 61)], Owner::Stage(stage("b")));
    }

    #[test]
    fn an_orphan_nothing_claims_is_unclaimed() {
        let table = Table::from([(ME + 70, process(ME, ME + 70))]);
        assert_eq!(owners(&table, &[])[&(ME + 70)], Owner::Unclaimed);
    }

    // git in gzl's own group, and a `gzl run --debug` shell, are never a stage's.
    #[test]
    fn gzl_s_own_children_and_spared_ones_are_not_a_stage_s() {
        let table = Table::from([
            (ME + 80, process(ME, 7)),
            (ME + 81, process(ME + 80, 7)),
            (ME + 90, process(ME, ME + 90)),
            (ME + 91, process(ME + 90, ME + 91)),
        ]);
        let owners = owners(&table, &[ME + 90]);
        for pid in [ME + 80, ME + 81, ME + 90, ME + 91] {
            assert_eq!(owners[&pid], Owner::NotOurs, "pid {pid}");
        }
    }

    #[test]
    fn a_process_whose_line_leaves_the_table_is_not_ours() {
        // Its parent was not read (started before the stage, or not below gzl at all).
        let table = Table::from([(ME + 100, process(12345, ROOT))]);
        assert_eq!(owners(&table, &[])[&(ME + 100)], Owner::NotOurs);
    }

    #[test]
    fn stat_fields_are_read_after_the_last_parenthesis_of_the_name() {
        let stat = b"4242 (evil) Z 1 2 (x) S 17 99 98 0 -1 4194304 100";
        let process = parse_stat(stat).expect("parsed");
        assert_eq!(
            (process.ppid, process.pgid, process.zombie),
            (17, 99, false)
        );
        let zombie = parse_stat(b"4243 (sh) Z 17 99 98").expect("parsed");
        assert!(zombie.zombie);
        assert!(parse_stat(b"4244 (sh").is_none());
    }

    #[test]
    fn a_young_stage_looks_only_at_later_pids() {
        assert_eq!(Scope::since(500, Instant::now()), Scope::Since(500));
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(3600))
            .expect("an hour ago");
        assert_eq!(Scope::since(500, long_ago), Scope::All);
    }
}
