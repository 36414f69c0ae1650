import Foundation
import Glibc
import Synchronization
import Testing
import VSwiftTesting
import VSwiftControl
import VSwiftProtocol

/// Issue 13, defects 5 and 6 against a real vswiftd: hostile control clients cannot take its
/// memory, slow its forwarding or its other clients, and a name with a NUL creates no device.
extension Integration {
@Suite("Control limits integration")
struct ControlLimitsIntegrationTests {
    private func residentBytes(pid: Int32) -> Int {
        Self.residentBytes(pid: pid)
    }

    static func residentBytes(pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return 0 }
        return kib << 10
    }

    @Test("clients streaming garbage, never reading, or holding connections do not slow pings or other clients")
    func garbageStreamsDoNotSlowForwarding() throws {
        let (topology, _, h1, _, daemon) = try SwitchIntegrationTests().twoHosts(subnet: "10.77.13")
        defer { daemon.stop(); topology.destroy() }
        try SwitchIntegrationTests().ping(from: h1, "10.77.13.2", count: 1)
        let rssBefore = residentBytes(pid: daemon.pid)

        let stop = Atomic<Bool>(false)
        let socketPath = daemon.socketPath
        var attackers: [Thread] = []
        // Garbage lines as fast as the socket takes them, replies never read.
        for _ in 0..<2 {
            attackers.append(Thread {
                guard let raw = try? RawControlConnection(path: socketPath) else { return }
                let garbage = Array(String(repeating: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"show\"}\n{xx\n", count: 4000).utf8)
                while !stop.load(ordering: .relaxed) {
                    if garbage.withUnsafeBytes({ send(raw.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) < 0 { return }
                }
            })
        }
        // vswiftd's resident memory, sampled every 20 ms while the attack goes on.
        let peak = Atomic<Int>(rssBefore)
        let pid = daemon.pid
        attackers.append(Thread {
            while !stop.load(ordering: .relaxed) {
                let rss = Self.residentBytes(pid: pid)
                if rss > peak.load(ordering: .relaxed) { peak.store(rss, ordering: .relaxed) }
                usleep(20_000)
            }
        })
        for attacker in attackers { attacker.start() }
        defer { stop.store(true, ordering: .relaxed) }
        // Idle connections cost a slot each, nothing more.
        var idle: [RawControlConnection] = []
        for _ in 0..<20 { if let connection = try? RawControlConnection(path: daemon.socketPath) { idle.append(connection) } }

        let started = Date()
        let result = try run(["ip", "netns", "exec", h1, "ping", "-c", "40", "-i", "0.05", "-W", "1", "10.77.13.2"], check: false)
        #expect(result.status == 0, "\(result.stdout)")
        #expect(result.stdout.contains(" 0% packet loss"), "\(result.stdout)")
        // Other clients are served promptly meanwhile.
        for _ in 0..<5 {
            let asked = Date()
            _ = try daemon.call("show").get()
            #expect(Date().timeIntervalSince(asked) < 1, "show took \(Date().timeIntervalSince(asked)) s")
        }
        // Before the limits the replies of the clients that never read piled up (~30 MB/s each);
        // now each holds at most 4 MiB of replies and one read's worth of requests.
        let growth = peak.load(ordering: .relaxed) - rssBefore
        #expect(growth < 48 << 20, "RSS grew by \(growth >> 20) MiB in \(Date().timeIntervalSince(started)) s")
        stop.store(true, ordering: .relaxed)
        idle.removeAll()
        try SwitchIntegrationTests().expectFramesAccounted(daemon)
    }

    @Test("a bridge named z\\u0000y is refused naming it, and no kernel device z appears")
    func nulInANameCreatesNoDevice() throws {
        let topology = Topology()
        defer { topology.destroy() }
        let sw = try topology.namespace("sw")
        let daemon = try Daemon(namespace: sw)
        defer { daemon.stop() }
        let raw = try RawControlConnection(path: daemon.socketPath)
        let reply = try raw.request(#"{"jsonrpc":"2.0","id":1,"method":"add-br","params":{"bridge":"z\u0000y"}}"#)
        guard case .object(let object) = reply, case .object(let error)? = object["error"] else {
            Issue.record("add-br z\\u0000y was accepted: \(reply)")
            return
        }
        #expect(error["code"] == .int(-32602))
        #expect(!interfaceExists(namespace: sw, interface: "z"))
        let show: ShowReport = try daemon.call("show").get().decode()
        #expect(show.bridges.isEmpty)
    }
}
}
