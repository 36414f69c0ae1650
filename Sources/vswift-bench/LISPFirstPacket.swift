import ArgumentParser
import CXDP
import Foundation
import Glibc

/// `vswift-bench lisp-first-packet` (issue 16): how long the first packet of a flow to an EID
/// nobody has asked about yet waits for the mapping system. Two vswiftd sites with remote_ip=map
/// and the RFC 9301 mapping-system fixture (FirstPacketSites); for each of N destinations in N
/// EID prefixes site 2 registers (10.4.K.0/24, so each is a fresh map-cache miss at site 1), a
/// UDP probe stream from site 1's VM, one datagram every --interval-ms, until the first one reaches
/// site 2's VM. Both ends are in this process on one host: CLOCK_MONOTONIC on both sides.
struct LISPFirstPacket: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lisp-first-packet",
        abstract: "First-packet latency through the LISP mapping system: miss, Map-Request, Map-Reply installed, packet delivered.",
        discussion: """
            Builds two vswiftd sites (remote_ip=map) and the Python mapping system of the integration \
            tests (Tests/IntegrationTests/Fixtures/lisp_mapping_system.py, found above the executable, \
            or --fixture) in network namespaces, registers both, and for each of --destinations fresh \
            EID prefixes sends a UDP probe every --interval-ms from site 1's VM until the first \
            reaches site 2's VM. Reports the time from the first probe sent to the first delivered \
            (resolution: the interval), the probes dropped before (map_miss), and when the \
            Encapsulated Map-Request reached the map-server (its log; millisecond wall clock). Needs root.
            """)

    @Option(help: "Fresh destination EID prefixes to measure (1...32; each one miss).")
    var destinations: Int = 20

    @Option(name: .customLong("interval-ms"), help: "Milliseconds between probes of one destination.")
    var intervalMilliseconds: Double = 1

    @Option(help: "Seconds to wait for a destination's first probe to arrive.")
    var timeout: Double = 5

    @Option(help: "The mapping system fixture (default: Tests/IntegrationTests/Fixtures/lisp_mapping_system.py above the executable).")
    var fixture: String?

    @Option(name: .customLong("bpf-dir"), help: "Directory of the BPF objects (default: next to the executable, then .build/bpf).")
    var bpfDirectory: String?

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard (1...32).contains(destinations) else { throw ValidationError("--destinations must be 1...32") }
        guard intervalMilliseconds >= 0.1, intervalMilliseconds <= 100 else { throw ValidationError("--interval-ms must be 0.1...100") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        if let json { try ForwardOptions.validateOutput(json) }
    }

    mutating func run() throws {
        try requireRoot()
        let script = try fixture ?? FirstPacketSites.findFixture()
        let bpf = try Artifacts.bpfDirectory(explicit: bpfDirectory)
        let binaries = executableDirectory()
        Signals.install()
        Topology.removeStale()
        let sites = FirstPacketSites(destinations: destinations)
        let interval = intervalMilliseconds / 1000
        try runInterruptibly {
            defer { sites.destroy() }
            try sites.create(fixture: script, vswiftd: binaries + "/vswiftd", vswiftctl: binaries + "/vswiftctl", bpfDirectory: bpf)
            let missesBefore = try sites.mapMisses()
            let probe = try FirstPacketProbe(sender: sites.vm1, receiver: sites.vm2)
            defer { probe.close() }
            var samples: [FirstPacketProbe.Sample] = []
            for k in 1...destinations {
                if Signals.stopRequested { throw BenchError.interrupted }
                let sample: FirstPacketProbe.Sample
                do {
                    sample = try probe.measure(destination: k, interval: interval, timeout: timeout)
                } catch BenchError.failed(let why) {
                    throw BenchError.failed(why + "\n" + sites.diagnostics())
                }
                log("vswift-bench: 10.4.\(k).1: first probe delivered after " + String(format: "%.3f", sample.latency * 1000)
                    + " ms, \(sample.dropped) sent before it")
                samples.append(sample)
                try Signals.sleep(0.05)
            }
            let misses = try sites.mapMisses() &- missesBefore
            let requestDelays = samples.map { sites.requestDelay(destination: $0.destination, firstSent: $0.firstSentWall) }
            let report = FirstPacketReport(samples: samples, mapMisses: misses, requestDelays: requestDelays, interval: interval)
            print(report.text, terminator: "")
            if let json { try report.json.write(toFile: json, atomically: true, encoding: .utf8) }
        }
    }
}

/// The probe stream: a UDP socket in the sender VM, one in the receiver VM bound to port 9999.
/// Each datagram carries the destination number, its sequence number and when it was sent.
final class FirstPacketProbe {
    static let port: UInt16 = 9999
    let sender: Int32, receiver: Int32

    struct Sample {
        var destination: Int
        /// First probe sent → first delivered, seconds.
        var latency: Double
        /// Probes sent before the first delivered one (dropped on the miss, or in flight).
        var dropped: Int
        var firstSentWall: Double
    }

    init(sender senderNamespace: String, receiver receiverNamespace: String) throws {
        sender = try Threads.run(inNamespace: senderNamespace) { () -> Int32 in
            let fd = socket(AF_INET, vs_sock_dgram, 0)
            // UDP checksum 0 (valid over IPv4, RFC 768): the veth would leave the checksum to an
            // offload (CHECKSUM_PARTIAL) that an AF_XDP switch never performs, and the far VM's
            // kernel would drop every probe as corrupt. (Ping computes its checksum itself.)
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, 11 /* SO_NO_CHECK */, &one, socklen_t(MemoryLayout<Int32>.size))
            return fd
        }
        receiver = try Threads.run(inNamespace: receiverNamespace) { () throws -> Int32 in
            let fd = socket(AF_INET, vs_sock_dgram, 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = Self.port.bigEndian
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard fd >= 0, rc == 0 else { throw BenchError.failed("cannot bind the probe receiver: \(String(cString: strerror(errno)))") }
            return fd
        }
        guard sender >= 0 else { throw BenchError.failed("cannot open the probe sender's socket") }
    }

    static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Probes 10.4.K.1 every `interval` until one arrives (or `timeout`).
    func measure(destination k: Int, interval: Double, timeout: Double) throws -> Sample {
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = Self.port.bigEndian
        target.sin_addr.s_addr = (UInt32(10) << 24 | UInt32(4) << 16 | UInt32(k) << 8 | 1).bigEndian
        let step = UInt64(interval * 1e9)
        let firstWall = Date().timeIntervalSince1970
        let first = Self.nanoseconds()
        let deadline = first + UInt64(timeout * 1e9)
        var next = first
        var sequence: UInt32 = 0
        var payload = [UInt8](repeating: 0, count: 16)
        var incoming = [UInt8](repeating: 0, count: 64)
        while true {
            var now = Self.nanoseconds()
            if now >= next {
                withUnsafeBytes(of: UInt32(k).bigEndian) { payload.replaceSubrange(0..<4, with: $0) }
                withUnsafeBytes(of: sequence.bigEndian) { payload.replaceSubrange(4..<8, with: $0) }
                withUnsafeBytes(of: now.bigEndian) { payload.replaceSubrange(8..<16, with: $0) }
                _ = withUnsafePointer(to: &target) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(sender, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                sequence += 1
                next += step
            }
            now = Self.nanoseconds()
            guard now < deadline else {
                throw BenchError.failed("no probe to 10.4.\(k).1 arrived within \(timeout) s (\(sequence) sent)")
            }
            var poller = pollfd(fd: receiver, events: Int16(POLLIN), revents: 0)
            let wait = next > now ? Int32(min((next - now) / 1_000_000, 100)) : 0
            guard poll(&poller, 1, wait) > 0 else { continue }
            let n = recv(receiver, &incoming, incoming.count, 0)
            let arrived = Self.nanoseconds()
            guard n >= 16 else { continue }
            let number = incoming[0..<4].reduce(0) { $0 << 8 | Int($1) }
            // A straggler of an earlier destination.
            guard number == k else { continue }
            let seq = incoming[4..<8].reduce(0) { $0 << 8 | Int($1) }
            return Sample(destination: k, latency: Double(arrived - first) / 1e9, dropped: seq, firstSentWall: firstWall)
        }
    }

    func close() {
        Glibc.close(sender)
        Glibc.close(receiver)
    }
}

/// Median, 90th percentile and maximum of the samples, as text and JSON.
struct FirstPacketReport {
    var samples: [FirstPacketProbe.Sample]
    var mapMisses: UInt64
    /// Per sample: first probe sent → Encapsulated Map-Request logged by the map-server (nil: not found).
    var requestDelays: [Double?]
    var interval: Double

    static func stats(_ values: [Double]) -> (median: Double, p90: Double, max: Double)? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return (Statistics.median(sorted), Statistics.quantile(sorted: sorted, 0.9), sorted.last!)
    }

    var text: String {
        var out = "lisp-first-packet: \(samples.count) fresh destinations, a probe every \(interval * 1000) ms\n"
        func line(_ name: String, _ values: [Double]) {
            guard let s = Self.stats(values) else { out += "  \(name): none\n"; return }
            out += "  \(name): " + String(format: "median %.2f ms, p90 %.2f ms, max %.2f ms", s.median * 1000, s.p90 * 1000, s.max * 1000)
                + " (\(values.count))\n"
        }
        line("first probe sent -> first delivered", samples.map(\.latency))
        line("first probe sent -> ECM at the map-server (its log, 1 ms)", requestDelays.compactMap { $0 })
        let dropped = samples.map { Double($0.dropped) }
        if let s = Self.stats(dropped) {
            out += String(format: "  probes lost before the first delivered: median %.0f, p90 %.0f, max %.0f", s.median, s.p90, s.max)
                + "; total \(samples.reduce(0) { $0 + $1.dropped })\n"
        }
        out += "  site 1's map_miss drops over the run: \(mapMisses)\n"
        return out
    }

    var json: String {
        let entries = zip(samples, requestDelays).map { sample, delay in
            "{\"destination\": \"10.4.\(sample.destination).1\", \"latency_ms\": \(sample.latency * 1000), \"dropped\": \(sample.dropped)"
                + (delay.map { ", \"request_at_map_server_ms\": \($0 * 1000)" } ?? "") + "}"
        }
        let s = Self.stats(samples.map(\.latency))
        return "{\"interval_ms\": \(interval * 1000), \"map_miss_drops\": \(mapMisses), "
            + "\"median_ms\": \((s?.median ?? 0) * 1000), \"p90_ms\": \((s?.p90 ?? 0) * 1000), \"max_ms\": \((s?.max ?? 0) * 1000), "
            + "\"samples\": [\(entries.joined(separator: ", "))]}\n"
    }
}
