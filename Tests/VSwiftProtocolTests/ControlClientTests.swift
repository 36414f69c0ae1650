import Glibc
import SystemPackage
import Testing

@testable import VSwiftProtocol

/// The client on its own; against a server (answers, timeouts, impostors) it is tested with
/// vswiftd's ControlServer in VSwiftControlTests.
@Suite struct ControlClientTests {
    @Test func defaultSocketPath() {
        #expect(ControlClient.defaultSocketPath(environment: [:]) == "/run/vswift/vswiftd.sock")
        #expect(ControlClient.defaultSocketPath(environment: ["VSWIFT_SOCKET": ""]) == "/run/vswift/vswiftd.sock")
        #expect(ControlClient.defaultSocketPath(environment: ["VSWIFT_SOCKET": "/tmp/s"]) == "/tmp/s")
    }

    /// Errors name the socket and, from swift-system's `Errno`, what went wrong.
    @Test func errorsNameThePathAndTheCause() {
        let path = "/nonexistent-vswift-directory/ctl.sock"
        let missing = #expect(throws: ControlClientError.self) { try ControlClient(socketPath: path).call("show", params: nil) }
        #expect(missing == .cannotConnect(path: path, errno: .noSuchFileOrDirectory))
        #expect(missing?.description == "cannot connect to \(path): No such file or directory (is vswiftd running?)")

        // sun_path holds 107 bytes and a NUL.
        let long = "/tmp/" + String(repeating: "s", count: 120)
        let tooLong = #expect(throws: ControlClientError.self) { try ControlClient(socketPath: long).call("show", params: nil) }
        #expect(tooLong?.description == "cannot connect to \(long): File name too long")

        let lost = ControlClientError.io(path: path, error: SocketError("send", errno: .brokenPipe))
        #expect(lost.description == "lost the connection to vswiftd on \(path): send: Broken pipe")
    }

    /// A socket whose peer went away: send gives EPIPE (MSG_NOSIGNAL: no SIGPIPE kills the test
    /// process), and reading gives end of file, not an error.
    @Test func socketCallsReportTheirErrno() throws {
        let pair = try connectedPair()
        let socket = UnixSocket(adopting: FileDescriptor(rawValue: pair.0))
        try socket.send(Array("hello\n".utf8))
        var received = [UInt8](repeating: 0, count: 6)
        #expect(recv(pair.1, &received, received.count, 0) == 6)
        #expect(received == Array("hello\n".utf8))
        close(pair.1)
        var buffer: [UInt8] = []
        #expect(try socket.receive(appendingTo: &buffer) == 0)
        #expect(throws: SocketError("send", errno: .brokenPipe)) { try socket.send([1]) }
    }
}

private func connectedPair() throws -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
        throw SocketError("socketpair")
    }
    return (fds[0], fds[1])
}
