import Foundation
import Glibc
import Testing
import VSwiftControl
import VSwiftTesting

/// sd_notify(3)'s protocol against a real datagram socket standing where systemd's would be.
@Suite("Service notification (sd_notify)")
struct ServiceNotifierTests {
    /// A datagram socket bound at `address` (a path, or "@name" in the abstract namespace).
    func listener(_ address: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var target = sockaddr_un()
        target.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(address.utf8)
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &target.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let bound = withUnsafePointer(to: &target) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        #expect(bound == 0, "bind \(address): \(String(cString: strerror(errno)))")
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    func receive(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
    }

    @Test("READY=1 and STATUS reach a socket named by path, in one datagram")
    func path() throws {
        let directory = try makeTemporaryDirectory("vswift-notify")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fd = try listener(directory + "/notify")
        defer { close(fd) }
        let notifier = try #require(ServiceNotifier(environment: ["NOTIFY_SOCKET": directory + "/notify"]))
        try notifier.notify(["READY=1", "STATUS=serving"])
        #expect(receive(fd) == "READY=1\nSTATUS=serving")
    }

    @Test("an abstract socket (@name) is reached without the @ and without a final NUL")
    func abstract() throws {
        let name = "@vswift-notify-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = try listener(name)
        defer { close(fd) }
        try #require(ServiceNotifier(environment: ["NOTIFY_SOCKET": name])).notify(["STOPPING=1"])
        #expect(receive(fd) == "STOPPING=1")
    }

    @Test("no NOTIFY_SOCKET, an empty one or an unsupported kind (vsock:) means nobody to notify; a missing socket is an error, not a crash")
    func absent() throws {
        #expect(ServiceNotifier(environment: [:]) == nil)
        #expect(ServiceNotifier(environment: ["NOTIFY_SOCKET": ""]) == nil)
        #expect(ServiceNotifier(environment: ["NOTIFY_SOCKET": "@"]) == nil)
        #expect(ServiceNotifier(environment: ["NOTIFY_SOCKET": "vsock:2:1234"]) == nil)
        let missing = try #require(ServiceNotifier(environment: ["NOTIFY_SOCKET": "/tmp/vswift-no-such-notify-socket"]))
        #expect(throws: (any Error).self) { try missing.notify(["READY=1"]) }
        let long = try #require(ServiceNotifier(environment: ["NOTIFY_SOCKET": "/" + String(repeating: "x", count: 200)]))
        #expect(throws: (any Error).self) { try long.notify(["READY=1"]) }
    }
}
