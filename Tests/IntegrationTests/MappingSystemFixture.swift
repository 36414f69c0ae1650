import CXDP
import Foundation
import Glibc
import VSwiftTesting

/// The test mapping system (Fixtures/lisp_mapping_system.py: a Map-Server and Map-Resolver written
/// from RFC 9301 in Python's standard library, independently of VSwiftLISPControl) running in a
/// namespace. Every message it receives or sends is one JSON line in `logPath`; `entries` reads them.
final class MappingSystemFixture {
    static let script = Paths.root + "/Tests/IntegrationTests/Fixtures/lisp_mapping_system.py"

    let namespace: String
    let logPath: String
    let errorPath: String
    let process = Process()

    /// `sites`: `NAME,KEYID,PASSWORD[,IID:PREFIX]...` each (the fixture's `--site`).
    init(namespace: String, sites: [String], extraArguments: [String] = []) throws {
        guard let python = TestMachine.tool("python3") else {
            throw CommandFailed(command: ["python3"], result: CommandResult(status: 127, stdout: "", stderr: "python3 is not installed (scripts/setup.sh installs it)"))
        }
        self.namespace = namespace
        logPath = "/tmp/\(namespace).mapping-system.log"
        errorPath = "/tmp/\(namespace).mapping-system.err"
        unlink(logPath)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", namespace, python, "-B", Self.script, "--log", logPath]
            + sites.flatMap { ["--site", $0] } + extraArguments
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        let errors = FileHandle(forWritingAtPath: errorPath)
        process.standardOutput = errors
        process.standardError = errors
        try process.run()
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline, process.isRunning {
            if entries.contains(where: { $0["event"] as? String == "ready" }) { return }
            usleep(50_000)
        }
        stop()
        throw CommandFailed(command: process.arguments ?? [], result: CommandResult(status: -1, stdout: "", stderr: "the mapping system did not come up: \(errorText)"))
    }

    var errorText: String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }
    var logText: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The log's JSON lines, parsed.
    var entries: [[String: Any]] {
        logText.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }

    /// The first entry that satisfies `match` within `timeout` seconds.
    func waitFor(timeout: Double = 10, _ match: ([String: Any]) -> Bool) -> [String: Any]? {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            if let entry = entries.first(where: match) { return entry }
            usleep(100_000)
        } while Date() < deadline
        return nil
    }

    /// SIGTERM, then waits (the fixture writes its counters as its last line and exits).
    func stop() {
        guard process.isRunning else { return }
        // ip netns exec execs python, so the Process's pid is the fixture's.
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// A UDP socket (IPv4 or IPv6) inside a namespace, for the LISP control messages of the tests.
final class ControlSocket {
    let fd: Int32
    let ipv6: Bool

    init(namespace: String, ipv6: Bool, bindPort: UInt16) throws {
        self.ipv6 = ipv6
        fd = try inNamespace(namespace) { () throws -> Int32 in
            let fd = socket(ipv6 ? AF_INET6 : AF_INET, vs_sock_dgram, 0)
            guard fd >= 0 else { throw CommandFailed.system(["socket"]) }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
            let rc: Int32
            if ipv6 {
                setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, 4)
                var address = sockaddr_in6()
                address.sin6_family = sa_family_t(AF_INET6)
                address.sin6_port = bindPort.bigEndian
                rc = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
                }
            } else {
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = bindPort.bigEndian
                rc = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
            guard rc == 0 else {
                let error = CommandFailed.system(["bind", "\(bindPort)"])
                close(fd)
                throw error
            }
            return fd
        }
    }

    @discardableResult
    func send(_ payload: [UInt8], to ip: String, port: UInt16 = 4342) -> Bool {
        var storage = sockaddr_storage()
        let length: socklen_t
        if ipv6 {
            length = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a in
                    a.pointee.sin6_family = sa_family_t(AF_INET6)
                    a.pointee.sin6_port = port.bigEndian
                    inet_pton(AF_INET6, ip, &a.pointee.sin6_addr)
                    return socklen_t(MemoryLayout<sockaddr_in6>.size)
                }
            }
        } else {
            length = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a in
                    a.pointee.sin_family = sa_family_t(AF_INET)
                    a.pointee.sin_port = port.bigEndian
                    inet_pton(AF_INET, ip, &a.pointee.sin_addr)
                    return socklen_t(MemoryLayout<sockaddr_in>.size)
                }
            }
        }
        let n = payload.withUnsafeBytes { raw in
            withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, raw.baseAddress, raw.count, 0, $0, length) }
            }
        }
        return n == payload.count
    }

    /// The next datagram within `timeout` seconds, with its sender's address, or nil.
    func receive(timeout: Double) -> (payload: [UInt8], from: String)? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) > 0 else { return nil }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let n = buffer.withUnsafeMutableBytes { raw in
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &length) }
            }
        }
        guard n >= 0 else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: UInt8.self, capacity: MemoryLayout<sockaddr_storage>.size) { base in
                if ipv6 {
                    _ = inet_ntop(AF_INET6, base + 8, &text, socklen_t(text.count))
                } else {
                    _ = inet_ntop(AF_INET, base + 4, &text, socklen_t(text.count))
                }
            }
        }
        return (Array(buffer[0..<n]), String(cString: text))
    }

    deinit { close(fd) }
}
