import CSupport
import CXDP
import Foundation
import Glibc
import Synchronization

/// The switch CPU's core clock against the time-stamp counter, so TSC cycles (what the workers
/// and xsk_fwd account) can be stated in core cycles too: a VM's TSC ticks at the nominal clock,
/// while the core may run boosted (on the development VM: TSC 2.60 GHz, core 3.66 GHz).
/// Measured on an idle CPU before the runs, with a chain of dependent additions (one cycle each).
struct CoreClock: Codable {
    var tscGigahertz: Double
    var coreGigahertz: Double
    /// Core cycles per TSC cycle.
    var ratio: Double { coreGigahertz / tscGigahertz }

    static func measure(cpu: Int) -> CoreClock? {
        final class Box: Sendable { let value = Mutex<CoreClock?>(nil) }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            _ = vs_pin_to_cpu(Int32(cpu))
            _ = vs_tsc_for_dependent_adds(10_000_000)  // wake the core up to its running clock
            let iterations: UInt64 = 100_000_000
            let start = monotonicSeconds()
            let tsc = vs_tsc_for_dependent_adds(iterations)
            let seconds = monotonicSeconds() - start
            if tsc > 0 && seconds > 0 {
                let tscHz = Double(tsc) / seconds
                let clock = CoreClock(tscGigahertz: tscHz / 1e9, coreGigahertz: tscHz * Double(4 * iterations) / Double(tsc) / 1e9)
                box.value.withLock { $0 = clock }
            }
            done.signal()
        }
        thread.start()
        done.wait()
        return box.value.withLock { $0 }
    }
}
