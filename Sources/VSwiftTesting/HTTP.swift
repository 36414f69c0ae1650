import Foundation
import Glibc
import VSwiftDatapath

// A raw HTTP/1.1 exchange over TCP for the metrics endpoint's tests: the request bytes are the
// test's to choose (hostile ones included), and nothing is parsed beyond the status line.

/// What came back: the status code (0 when the server closed without a status line) and the
/// whole response text.
public struct HTTPExchange: Sendable {
    public let status: Int
    public let response: String

    /// The body: everything after the first empty line.
    public var body: String {
        guard let range = response.range(of: "\r\n\r\n") else { return "" }
        return String(response[range.upperBound...])
    }
}

/// Connects to `host:port` (IPv4), sends `request` (then keeps the connection open), and reads
/// until the server closes or `timeout` seconds pass.
public func httpExchange(host: String = "127.0.0.1", port: Int, request: [UInt8], timeout: Double = 10) throws -> HTTPExchange {
    let fd = try tcpConnect(host: host, port: port, timeout: timeout)
    defer { close(fd) }
    var sent = 0
    while sent < request.count {
        let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { break }  // the server may close early (a request it refuses)
        sent += n
    }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            response += buffer[0..<n]
        } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
            break
        }
    }
    let text = String(decoding: response, as: UTF8.self)
    var status = 0
    if text.hasPrefix("HTTP/1.") {
        let fields = text.split(separator: " ", maxSplits: 2)
        if fields.count >= 2 { status = Int(fields[1]) ?? 0 }
    }
    return HTTPExchange(status: status, response: text)
}

/// `GET path` on `host:port`.
public func httpGet(host: String = "127.0.0.1", port: Int, path: String, timeout: Double = 10) throws -> HTTPExchange {
    try httpExchange(
        host: host, port: port, request: Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\n\r\n".utf8), timeout: timeout)
}

/// A connected TCP socket to `host:port` whose reads give up after `timeout` seconds.
public func tcpConnect(host: String = "127.0.0.1", port: Int, timeout: Double = 10) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw SystemError("socket") }
    var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    inet_pton(AF_INET, host, &address.sin_addr)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        let error = SystemError("connect \(host):\(port)")
        close(fd)
        throw error
    }
    return fd
}
