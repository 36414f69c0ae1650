import Foundation
import Glibc
import Testing
import VSwiftProtocol
import VSwiftTesting

/// A running `vswiftctl capture` (a child process), stopped as an operator would with Ctrl-C.
final class CaptureRun {
    let process = Process()
    let file: String
    private let errors = Pipe()

    init(_ daemon: Daemon, _ arguments: [String], file: String) throws {
        self.file = file
        unlink(file)
        process.executableURL = URL(fileURLWithPath: Paths.vswiftctl)
        process.arguments = ["--socket", daemon.socketPath, "capture"] + arguments + ["-w", file]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        // Capturing once the file has its header (written after capture-start's reply).
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && process.isRunning {
            if let size = try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int, size > 0 { return }
            usleep(20_000)
        }
        throw CommandFailed(command: process.arguments ?? [], result: CommandResult(status: -1, stdout: "", stderr: "the capture did not start: \(stderrText())"))
    }

    /// Waits up to `seconds` for the capture to end by itself; its exit status and standard error.
    func waitForExit(seconds: Double) -> (status: Int32?, stderr: String) {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        guard !process.isRunning else { return (nil, "") }
        return (process.terminationStatus, stderrText())
    }

    /// SIGINT, as Ctrl-C; then the exit status and standard error.
    func interrupt() -> (status: Int32?, stderr: String) {
        kill(process.processIdentifier, SIGINT)
        return waitForExit(seconds: 10)
    }

    private func stderrText() -> String {
        if process.isRunning { return "" }
        return String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        unlink(file)
    }
}

/// A pcapng file's frames as tshark decodes them: direction (1 in, 2 out), outer and inner IP
/// sources, ICMP type, UDP destination ports, and whether tshark found it malformed.
func tsharkRows(_ file: String) throws -> [[String]] {
    let fields = ["frame.packet_flags_direction", "ip.src", "icmp.type", "udp.dstport", "_ws.malformed", "eth.type"]
    let out = try run(["tshark", "-n", "-r", file, "-T", "fields", "-E", "separator=|"] + fields.flatMap { ["-e", $0] }).stdout
    return out.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
}

/// epb_flags' direction as tshark prints it (decimal or hex, by version).
func captureDirection(_ row: [String]) -> Int? {
    let text = row.first ?? ""
    return text.hasPrefix("0x") ? Int(text.dropFirst(2), radix: 16) : Int(text)
}

func portCounters(_ daemon: Daemon, bridge: String, port: String) throws -> PortStatisticsReport {
    let report: DumpPortsReport = try daemon.call("dump-ports", ["bridge": .string(bridge), "port": .string(port)]).get().decode()
    guard let entry = report.ports.first(where: { $0.name == port }) else {
        throw CommandFailed(command: ["dump-ports", bridge, port], result: CommandResult(status: 1, stdout: "\(report)", stderr: "no such port"))
    }
    return entry.statistics
}

extension Integration {
@Suite("Port capture (vswiftctl capture) end to end")
struct CaptureIntegrationTests {
    @Test("the seed's ping captured on vnet0 (the VM's frames) and on em1 (the outer LISP packets): every frame decodes in tshark, directions and counts match the port counters")
    func captureVMPortAndUnderlayDuringPing() throws {
        let hosts = try LISPHosts(underlay: .bridge)
        defer { hosts.destroy() }
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
        usleep(300_000)
        let d = hosts.daemon1
        let vnetBefore = try portCounters(d, bridge: "br2", port: "vnet0")
        let em1Before = try portCounters(d, bridge: "br1", port: "em1")
        let vm = try CaptureRun(d, ["br2", "vnet0"], file: "/tmp/\(hosts.host1)-vnet0.pcapng")
        let underlay = try CaptureRun(d, ["br1", "em1", "--direction", "both"], file: "/tmp/\(hosts.host1)-em1.pcapng")
        try run(["ip", "netns", "exec", hosts.vm1, "ping", "-c", "5", "-i", "0.2", "-W", "2", "10.1.1.30"])
        usleep(300_000)
        let vmEnd = vm.interrupt()
        let underlayEnd = underlay.interrupt()
        let vnetAfter = try portCounters(d, bridge: "br2", port: "vnet0")
        let em1After = try portCounters(d, bridge: "br1", port: "em1")
        #expect(vmEnd.status == 0 && vmEnd.stderr.contains("frames captured, 0 dropped by the capture"), "\(vmEnd)")
        #expect(underlayEnd.status == 0, "\(underlayEnd)")

        // vnet0: only the ping crossed it (the VMs have static ARP entries, IPv6 is off), so the
        // capture holds exactly what the counters counted: 5 requests in, 5 replies out.
        let vmRows = try tsharkRows(vm.file)
        let received = vmRows.filter { captureDirection($0) == 1 }, sent = vmRows.filter { captureDirection($0) == 2 }
        #expect(UInt64(received.count) == vnetAfter.rxPackets - vnetBefore.rxPackets, "\(vmRows)")
        #expect(UInt64(sent.count) == vnetAfter.txPackets - vnetBefore.txPackets, "\(vmRows)")
        #expect(received.count == 5 && received.allSatisfy { $0[1] == "10.1.1.20" && $0[2] == "8" }, "\(vmRows)")
        #expect(sent.count == 5 && sent.allSatisfy { $0[1] == "10.1.1.30" && $0[2] == "0" }, "\(vmRows)")
        #expect(vmRows.allSatisfy { $0.count == 6 && $0[4].isEmpty }, "a frame did not decode: \(vmRows)")

        // em1: the same ping, encapsulated — requests out to host2, replies in from it — and
        // whatever else the host sent meanwhile (ARP), never more than the counters counted.
        let wireRows = try tsharkRows(underlay.file)
        let lispOut = wireRows.filter { captureDirection($0) == 2 && $0[1] == "192.168.1.249,10.1.1.20" && $0[3] == "4341" && $0[2] == "8" }
        let lispIn = wireRows.filter { captureDirection($0) == 1 && $0[1] == "192.168.1.252,10.1.1.30" && $0[3] == "4341" && $0[2] == "0" }
        #expect(lispOut.count == 5 && lispIn.count == 5, "\(wireRows)")
        let wireIn = wireRows.filter { captureDirection($0) == 1 }.count, wireOut = wireRows.filter { captureDirection($0) == 2 }.count
        #expect(UInt64(wireIn) <= em1After.rxPackets - em1Before.rxPackets && UInt64(wireOut) <= em1After.txPackets - em1Before.txPackets,
                "captured \(wireIn)/\(wireOut), counted \(em1After.rxPackets - em1Before.rxPackets)/\(em1After.txPackets - em1Before.txPackets)")
        #expect(wireRows.allSatisfy { $0.count == 6 && $0[4].isEmpty }, "a frame did not decode: \(wireRows)")
    }

    @Test("-w - streams pcapng to a pipe: vswiftctl capture br2 vnet0 -c 4 -w - | tshark -r - decodes 4 frames, and -c ends the capture")
    func streamToTShark() throws {
        let hosts = try LISPHosts(underlay: .bridge)
        defer { hosts.destroy() }
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
        let ping = Process()
        ping.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        ping.arguments = ["ip", "netns", "exec", hosts.vm1, "ping", "-c", "30", "-i", "0.1", "-W", "1", "10.1.1.30"]
        ping.standardOutput = FileHandle.nullDevice
        try ping.run()
        defer { if ping.isRunning { kill(ping.processIdentifier, SIGKILL) }; ping.waitUntilExit() }
        let pipeline = "\(Paths.vswiftctl) --socket \(hosts.daemon1.socketPath) capture br2 vnet0 -c 4 -w - | tshark -n -r - -T fields -e icmp.type -e _ws.malformed"
        let result = try run(["/bin/sh", "-c", pipeline])
        let lines = result.stdout.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
        #expect(lines.count == 4, "\(result.stdout)\(result.stderr)")
        #expect(lines.allSatisfy { ($0.first == "8" || $0.first == "0") && ($0.count < 2 || $0[1].isEmpty) }, "\(result.stdout)")
        #expect(result.stderr.contains("4 frames captured"), "\(result.stderr)")
        // The daemon stopped the session: all capture slots are free again.
        try expectCaptureSlotsFree(hosts.daemon1)
    }

    @Test("a port deleted mid-capture ends it cleanly with a readable file; captures are limited, and one nobody reads is stopped")
    func deletedPortAndLimits() throws {
        let hosts = try LISPHosts(underlay: .bridge)
        defer { hosts.destroy() }
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
        let d = hosts.daemon1
        let capture = try CaptureRun(d, ["br2", "vnet0"], file: "/tmp/\(hosts.host1)-deleted.pcapng")
        try run(["ip", "netns", "exec", hosts.vm1, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.1.1.30"])
        try d.ctl("del-port", "br2", "vnet0")
        let end = capture.waitForExit(seconds: 5)
        #expect(end.status == 0, "the capture did not end when its port was deleted: \(end)")
        #expect(end.stderr.contains("capture ended: port vnet0 was deleted"), "\(end.stderr)")
        let rows = try tsharkRows(capture.file)
        #expect(rows.count >= 4 && rows.allSatisfy { $0.count == 6 && $0[4].isEmpty }, "\(rows)")

        // Limits: four at once; a client that vanishes (never reads) has its capture stopped.
        try expectCaptureSlotsFree(d)
    }

    /// All `CaptureLimits.maxSessions` captures can start (none leaked), a fifth is refused, and
    /// the unread ones are stopped after `CaptureLimits.idleSeconds`.
    func expectCaptureSlotsFree(_ d: Daemon) throws {
        var ids: [Int] = []
        for port in ["em1", "br1", "br1", "em1"] {
            let reply: CaptureStartReply = try d.call("capture-start", ["bridge": "br1", "port": .string(port), "direction": "both"]).get().decode()
            ids.append(reply.id)
        }
        let fifth = try d.call("capture-start", ["port": "lisp0", "direction": "rx"])
        guard case .failure(let error) = fifth else {
            Issue.record("a fifth capture started")
            return
        }
        #expect(error.code == -32005, "\(error)")
        usleep(useconds_t((CaptureLimits.idleSeconds + 1.5) * 1_000_000))
        for id in ids {
            let read = try d.call("capture-read", ["id": .int(Int64(id))])
            guard case .failure = read else {
                Issue.record("capture \(id) still runs unread after \(CaptureLimits.idleSeconds) s")
                continue
            }
        }
        let again: CaptureStartReply = try d.call("capture-start", ["port": "lisp0", "direction": "tx"]).get().decode()
        _ = try d.call("capture-stop", ["id": .int(Int64(again.id))]).get()
    }
}
}
