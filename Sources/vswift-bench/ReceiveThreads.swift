import ArgumentParser
import Foundation
import Glibc

/// Where s0's receive path runs: the XDP program of the switch under test (with the XDP flow
/// cache: the whole forwarding of a hit) and the copy into an AF_XDP socket.
///
/// By default a veth's NAPI runs in softirq on the CPU that transmitted into it: for s0 that is
/// the generator's CPU (BPF_PROG_RUN's syscall), so the switch's XDP work is paid by the
/// generator and a cache hit never touches the switch's CPU. `switch` moves it there: s0's NAPI
/// runs threaded (a `napi/s0-N` kernel thread, GRO on so the NAPI outlives XDP attach and detach
/// between runs) pinned to the switch CPU, so the switch CPU carries all of the switch's work, for
/// every switch alike. k0's NAPI (the sink's XDP drop, ~30 ns a frame) stays in softirq on the CPU
/// that sends into it, the switch's, as before: threaded on the generator CPU it was starved by the
/// generator (which takes all the CPU it gets) and lost most frames (measured: 6 % delivered).
enum ReceiveCPU: String, ExpressibleByArgument, CaseIterable, Codable {
    /// `switch` when the XDP cache is measured, `generator` otherwise.
    case auto
    case switchCPU = "switch"
    case generatorCPU = "generator"
}

/// A veth end's NAPI made threaded and its kernel thread pinned to a CPU.
struct ReceiveThread {
    let device: String
    let namespace: String
    let pid: Int32
    let cpu: Int

    /// Turns GRO on (veth keeps its NAPI while GRO is requested, XDP program or not), makes the
    /// device's NAPI threaded and pins the thread that appears. The thread is told apart from
    /// other namespaces' devices of the same name by being new: the pids named `napi/DEVICE-*`
    /// before the switch to threaded mode are excluded.
    static func pin(device: String, namespace: String, cpu: Int) throws -> ReceiveThread {
        let before = napiThreads(device: device)
        let ip = systemTool("ip")
        _ = try runCommand([ip, "netns", "exec", namespace, systemTool("ethtool"), "-K", device, "gro", "on"])
        _ = try runCommand([ip, "netns", "exec", namespace, systemTool("sh"), "-c", "echo 1 > /sys/class/net/\(device)/threaded"])
        let deadline = monotonicSeconds() + 2
        var fresh: [Int32] = []
        repeat {
            fresh = napiThreads(device: device).subtracting(before).sorted()
            if !fresh.isEmpty { break }
            usleep(5000)
        } while monotonicSeconds() < deadline
        guard fresh.count == 1, let pid = fresh.first else {
            throw BenchError.failed("threaded NAPI on \(device): expected one new napi/\(device)-* kernel thread, found \(fresh)")
        }
        _ = try runCommand([systemTool("taskset"), "-pc", String(cpu), String(pid)])
        return ReceiveThread(device: device, namespace: namespace, pid: pid, cpu: cpu)
    }

    /// The thread still exists and still runs on its CPU only (a switch that toggled GRO or the
    /// threaded mode would have replaced it).
    var isInPlace: Bool {
        guard let comm = readTextFile("/proc/\(pid)/comm"), comm.hasPrefix("napi/\(device)-") else { return false }
        guard let status = readTextFile("/proc/\(pid)/status"),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else { return false }
        return line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces) == String(cpu)
    }

    /// Pids of the kernel threads named `napi/DEVICE-*` (any namespace).
    static func napiThreads(device: String) -> Set<Int32> {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var pids: Set<Int32> = []
        for entry in entries {
            guard let pid = Int32(entry), let comm = readTextFile("/proc/\(entry)/comm") else { continue }
            if comm.hasPrefix("napi/\(device)-") { pids.insert(pid) }
        }
        return pids
    }
}
