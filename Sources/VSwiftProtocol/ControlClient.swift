import Glibc
import SystemPackage

/// A blocking JSON-RPC client for vswiftd's control socket: one connection per call.
///
/// Plain sockets rather than NIO so that `vswiftctl` starts fast and spawns no threads.
public struct ControlClient: Sendable {
    public var socketPath: String
    /// How long one receive may wait for the daemon; zero waits forever.
    public var timeout: Duration

    public init(socketPath: String, timeout: Duration = .seconds(30)) {
        self.socketPath = socketPath
        self.timeout = timeout
    }

    /// `$VSWIFT_SOCKET` when set and not empty, else `/run/vswift/vswiftd.sock`.
    public static func defaultSocketPath(environment: [String: String]) -> String {
        if let path = environment["VSWIFT_SOCKET"], !path.isEmpty { return path }
        return "/run/vswift/vswiftd.sock"
    }

    /// Sends one request and waits for its response. The daemon's answer, success or error, is the
    /// returned `Result`; failing to get an answer at all throws.
    public func call(_ method: String, params: JSONValue?) throws(ControlClientError) -> Result<JSONValue, RPCError> {
        try call(request: RPCCodec.encodeRequest(id: 1, method: method, params: params))
    }

    /// `call` with the request line already written (e.g. `FlowFile.request`, with id 1).
    public func call(request: [UInt8]) throws(ControlClientError) -> Result<JSONValue, RPCError> {
        let socket: UnixSocket
        do throws(SocketError) {
            socket = try UnixSocket(connectingTo: socketPath, timeout: timeout)
        } catch {
            throw .cannotConnect(path: socketPath, errno: error.errno)
        }
        // Before sending anything: whoever listens there must be root or us, not another user who
        // put their socket in vswiftd's place.
        let peer: uid_t
        do throws(SocketError) {
            peer = try socket.peerUID()
        } catch {
            throw .io(path: socketPath, error: error)
        }
        guard peer == 0 || peer == geteuid() else { throw .untrustedPeer(path: socketPath, uid: peer) }
        do throws(SocketError) {
            try socket.send(request)
            // The only request on this connection: vswiftd closes it once it has answered.
            try socket.shutdownWriting()
        } catch {
            throw .io(path: socketPath, error: error)
        }
        let line = try receiveLine(from: socket)
        do throws(RPCError) {
            return try RPCCodec.decodeResponse(line)
        } catch {
            throw .invalidResponse(error.message)
        }
    }

    /// `call`, then decodes a successful result into `R` (e.g. `ShowReport`).
    public func call<R: Decodable>(
        _ method: String, params: JSONValue?, returning type: R.Type
    ) throws(ControlClientError) -> Result<R, RPCError> {
        switch try call(method, params: params) {
        case .success(let value):
            do throws(FieldError) {
                return .success(try value.decoded(as: type))
            } catch {
                throw .invalidResponse("\(method) result: \(error.message)")
            }
        case .failure(let error):
            return .failure(error)
        }
    }

    private func receiveLine(from socket: borrowing UnixSocket) throws(ControlClientError) -> [UInt8] {
        var received: [UInt8] = []
        var searchFrom = 0
        while true {
            let count: Int
            do throws(SocketError) {
                count = try socket.receive(appendingTo: &received)
            } catch where error.errno == .resourceTemporarilyUnavailable || error.errno == .wouldBlock {
                throw .timedOut(path: socketPath, timeout: timeout)
            } catch {
                throw .io(path: socketPath, error: error)
            }
            if count == 0 { throw .closed(path: socketPath) }
            if let newline = received[searchFrom...].firstIndex(of: UInt8(ascii: "\n")) {
                return Array(received[..<newline])
            }
            searchFrom = received.count
        }
    }
}

public enum ControlClientError: Error, Sendable, Equatable, CustomStringConvertible {
    case cannotConnect(path: String, errno: Errno)
    case io(path: String, error: SocketError)
    case timedOut(path: String, timeout: Duration)
    /// The daemon closed the connection without answering.
    case closed(path: String)
    case invalidResponse(String)
    /// The listening process runs as another user than root or the caller.
    case untrustedPeer(path: String, uid: uid_t)

    public var description: String {
        switch self {
        case .cannotConnect(let path, let errno):
            // These two mean nobody is listening there.
            let hint = errno == .noSuchFileOrDirectory || errno == .connectionRefused ? " (is vswiftd running?)" : ""
            return "cannot connect to \(path): \(errno)\(hint)"
        case .io(let path, let error):
            return "lost the connection to vswiftd on \(path): \(error)"
        case .timedOut(let path, let timeout):
            let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) * 1e-18
            return "no answer from vswiftd on \(path) within \(seconds) s"
        case .closed(let path):
            return "vswiftd closed the connection on \(path) without answering"
        case .invalidResponse(let detail):
            return "unexpected answer from vswiftd: \(detail)"
        case .untrustedPeer(let path, let uid):
            return "refusing to talk to \(path): it is served by uid \(uid), not by root or uid \(geteuid()) (another user may have put a socket in vswiftd's place)"
        }
    }
}

/// A failed socket call: which call, and the error it returned.
public struct SocketError: Error, Sendable, Equatable, CustomStringConvertible {
    public var operation: String
    public var errno: Errno

    /// `errno` defaults to the one the call just left in the C `errno`.
    package init(_ operation: String, errno: Errno = Errno(rawValue: Glibc.errno)) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String { "\(operation): \(errno)" }
}

/// A blocking, connected AF_UNIX stream socket, closed when it goes away.
package struct UnixSocket: ~Copyable {
    private let fd: FileDescriptor

    /// `timeout` bounds each send and receive (and connect, which Linux bounds by the send timeout);
    /// zero means no bound.
    package init(connectingTo path: String, timeout: Duration) throws(SocketError) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        // sun_path needs room for the terminating NUL.
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw SocketError("connect", errno: .fileNameTooLong)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { sunPath in
            sunPath.copyBytes(from: pathBytes)
        }

        let raw = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard raw >= 0 else { throw SocketError("socket") }
        let fd = FileDescriptor(rawValue: raw)

        let (seconds, attoseconds) = timeout.components
        var interval = timeval(tv_sec: Int(seconds), tv_usec: .init(attoseconds / 1_000_000_000_000))
        let length = socklen_t(MemoryLayout<timeval>.size)
        guard setsockopt(raw, SOL_SOCKET, SO_RCVTIMEO, &interval, length) == 0,
            setsockopt(raw, SOL_SOCKET, SO_SNDTIMEO, &interval, length) == 0
        else {
            let error = SocketError("setsockopt")
            try? fd.close()
            throw error
        }

        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let error = SocketError("connect")
            try? fd.close()
            throw error
        }
        self.fd = fd
    }

    /// Takes over a socket that is already connected (closed when this goes away).
    init(adopting fd: FileDescriptor) {
        self.fd = fd
    }

    deinit {
        try? fd.close()
    }

    package func send(_ bytes: [UInt8]) throws(SocketError) {
        var sent = 0
        while sent < bytes.count {
            // send(2) rather than FileDescriptor.writeAll for MSG_NOSIGNAL: a daemon that went away
            // must give EPIPE, not kill us with SIGPIPE.
            do throws(Errno) {
                sent += try retryingOnInterrupt {
                    bytes[sent...].withUnsafeBytes { Glibc.send(fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                }
            } catch {
                throw SocketError("send", errno: error)
            }
        }
    }

    /// The effective uid of the process that listens on the other end (SO_PEERCRED, taken when
    /// it called listen).
    package func peerUID() throws(SocketError) -> uid_t {
        // struct ucred (pid, uid, gid), which Glibc exports only with _GNU_SOURCE.
        var credentials = (pid: pid_t(0), uid: uid_t(0), gid: gid_t(0))
        var length = socklen_t(MemoryLayout<(pid_t, uid_t, gid_t)>.size)
        guard getsockopt(fd.rawValue, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 else {
            throw SocketError("getsockopt SO_PEERCRED")
        }
        return credentials.uid
    }

    package func shutdownWriting() throws(SocketError) {
        guard shutdown(fd.rawValue, Int32(SHUT_WR)) == 0 else { throw SocketError("shutdown") }
    }

    /// Appends what one read returns; 0 means the peer closed. A timeout throws EAGAIN.
    package func receive(appendingTo buffer: inout [UInt8]) throws(SocketError) -> Int {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let count: Int
        do {
            count = try chunk.withUnsafeMutableBytes { try fd.read(into: $0, retryOnInterrupt: true) }
        } catch {
            // swift-system throws only Errno, but untyped.
            throw SocketError("read", errno: error as? Errno ?? .ioError)
        }
        buffer += chunk[..<count]
        return count
    }
}
