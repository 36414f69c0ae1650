import CXDP
import Glibc

/// CPU cycles of the measured threads over a window, all and user mode only: the hardware counters
/// `perf stat -e cycles` reads, opened per thread with perf_event_open. Where the machine exposes
/// none (most VMs, this development VM included) opening fails and the bench says so instead.
struct CycleCounters {
    private var allFDs: [Int32] = []
    private var userFDs: [Int32] = []

    /// Counters for every thread, counting from now; or why there are none.
    static func open(threads: [(pid: Int32, tid: Int32)]) -> Result<CycleCounters, CycleCountersUnavailable> {
        var counters = CycleCounters()
        for thread in threads {
            let all = vs_perf_cycles_open(thread.tid, 0)
            let user = all >= 0 ? vs_perf_cycles_open(thread.tid, 1) : all
            guard all >= 0, user >= 0 else {
                if all >= 0 { Glibc.close(all) }
                counters.close()
                return .failure(CycleCountersUnavailable(errno: -min(all, user)))
            }
            counters.allFDs.append(all)
            counters.userFDs.append(user)
        }
        return .success(counters)
    }

    /// Cycles counted so far, summed over the threads: (all, user mode).
    func read() -> (all: UInt64, user: UInt64) {
        func sum(_ fds: [Int32]) -> UInt64 {
            fds.reduce(0) { total, fd in
                var value: UInt64 = 0
                return Glibc.read(fd, &value, 8) == 8 ? total &+ value : total
            }
        }
        return (sum(allFDs), sum(userFDs))
    }

    mutating func close() {
        for fd in allFDs + userFDs { Glibc.close(fd) }
        allFDs = []
        userFDs = []
    }
}

/// perf_event_open refused a cycle counter.
struct CycleCountersUnavailable: Error, CustomStringConvertible {
    let errno: Int32

    var description: String {
        let reason = String(cString: strerror(errno))
        switch errno {
        case ENOENT, EOPNOTSUPP, ENODEV:
            return "cycles per packet: not measured: this machine exposes no hardware cycle counter (perf_event_open: \(reason))"
        case EACCES, EPERM:
            return "cycles per packet: not measured: perf_event_open was refused (\(reason); see /proc/sys/kernel/perf_event_paranoid)"
        default:
            return "cycles per packet: not measured (perf_event_open: \(reason))"
        }
    }
}
