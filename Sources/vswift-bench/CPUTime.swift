import Glibc

/// CPU time of one thread, from procfs.
///
/// `runtimeNanoseconds` is the scheduler's exact on-CPU time (`/proc/PID/task/TID/schedstat`, first
/// field). `userTicks`/`systemTicks` are utime/stime from `.../stat` in clock ticks (USER_HZ, 10 ms):
/// the kernel splits the runtime between user and system mode by sampling at each timer tick
/// (CONFIG_HZ), so the split is statistical; the bench applies it to the exact runtime.
/// Softirq work that runs in the thread's context (e.g. a veth peer's NAPI poll raised by the
/// thread's own sendto) counts as its system time on kernels without CONFIG_IRQ_TIME_ACCOUNTING.
struct ThreadCPUTime {
    var runtimeNanoseconds: UInt64 = 0
    var userTicks: UInt64 = 0
    var systemTicks: UInt64 = 0
    /// The CPU the thread last ran on (stat field 39).
    var lastCPU: Int = -1

    static let ticksPerSecond = UInt64(max(sysconf(Int32(_SC_CLK_TCK)), 1))

    /// Reads thread `tid` of process `pid`; nil if it is gone.
    static func read(pid: Int32, tid: Int32) -> ThreadCPUTime? {
        let base = "/proc/\(pid)/task/\(tid)"
        guard let stat = readTextFile("\(base)/stat"), let schedstat = readTextFile("\(base)/schedstat") else { return nil }
        // The command name (field 2) is in parentheses and may hold spaces: fields count from after it.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); utime is field 14, stime field 15.
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        guard let runtime = schedstat.split(separator: " ").first.flatMap({ UInt64($0) }) else { return nil }
        let lastCPU = fields.count > 36 ? Int(fields[36]) ?? -1 : -1
        return ThreadCPUTime(runtimeNanoseconds: runtime, userTicks: user, systemTicks: system, lastCPU: lastCPU)
    }

    /// Thread ids of a process.
    static func threads(of pid: Int32) -> [Int32] {
        guard let dir = opendir("/proc/\(pid)/task") else { return [] }
        defer { closedir(dir) }
        var tids: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let tid = Int32(name) { tids.append(tid) }
        }
        return tids.sorted()
    }

    static func + (a: ThreadCPUTime, b: ThreadCPUTime) -> ThreadCPUTime {
        ThreadCPUTime(
            runtimeNanoseconds: a.runtimeNanoseconds &+ b.runtimeNanoseconds,
            userTicks: a.userTicks &+ b.userTicks, systemTicks: a.systemTicks &+ b.systemTicks)
    }
}

/// CPU used over a window: exact total, split into user and system by the tick samples.
struct CPUUsage {
    let totalNanoseconds: Double
    let userNanoseconds: Double
    let userTicks: UInt64
    let systemTicks: UInt64

    init(from a: ThreadCPUTime, to b: ThreadCPUTime) {
        totalNanoseconds = Double(b.runtimeNanoseconds &- a.runtimeNanoseconds)
        userTicks = b.userTicks &- a.userTicks
        systemTicks = b.systemTicks &- a.systemTicks
        let ticks = userTicks + systemTicks
        userNanoseconds = ticks == 0 ? 0 : totalNanoseconds * Double(userTicks) / Double(ticks)
    }
}
