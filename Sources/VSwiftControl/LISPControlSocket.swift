import Glibc
import VSwiftPacket

/// The LISP control socket: UDP on all addresses, IPv4 and IPv6 (an AF_INET6 socket with
/// IPV6_V6ONLY off; IPv4 peers appear as IPv4-mapped addresses, which is how `IPAddress` holds
/// IPv4 anyway), non-blocking. Opened by the service (so a port in use is the request's error),
/// then used by the LISP control thread alone (hence `@unchecked Sendable`); closed when released.
final class LISPControlSocket: @unchecked Sendable {
    /// -1 once closed.
    private(set) var fd: Int32
    /// The bound port (the one asked for, or the kernel's choice for 0).
    let port: UInt16

    /// Datagrams longer than this are dropped unread (counted): no LISP control message vswift
    /// reads is near it, and it bounds the receive buffer.
    static let maxDatagram = 9000

    struct OpenError: Error, CustomStringConvertible {
        var description: String
    }

    init(port: UInt16) throws(OpenError) {
        let fd = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw OpenError(description: "cannot create a UDP socket: \(String(cString: strerror(errno)))") }
        var off: Int32 = 0
        guard setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            let message = String(cString: strerror(errno))
            Glibc.close(fd)
            throw OpenError(description: "cannot make the UDP socket dual-stack (IPV6_V6ONLY): \(message)")
        }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = port.bigEndian
        address.sin6_addr = in6addr_any
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        guard bound == 0 else {
            let message = String(cString: strerror(errno))
            Glibc.close(fd)
            throw OpenError(description: "cannot bind UDP port \(port) on all addresses: \(message)")
        }
        var actual = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        self.port = UInt16(bigEndian: actual.sin6_port)
    }

    deinit {
        close()
    }

    /// Closes the socket now (the thread, as it ends, so the port is free when `configure` returns).
    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    enum Received {
        case datagram(length: Int, source: IPAddress, sourcePort: UInt16)
        /// Longer than the buffer: dropped.
        case oversized
        case empty
        case failed(Int32)
    }

    /// Reads one datagram into `buffer` (at least `maxDatagram` bytes).
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Received {
        var source = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        // MSG_TRUNC: the datagram's real length, so a longer one is seen (and dropped) as such.
        let n = withUnsafeMutablePointer(to: &source) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                recvfrom(fd, buffer.baseAddress, Self.maxDatagram, Int32(MSG_TRUNC), $0, &length)
            }
        }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { return .empty }
            if errno == EINTR { return .failed(EINTR) }
            return .failed(errno)
        }
        guard n <= Self.maxDatagram else { return .oversized }
        let address = withUnsafeBytes(of: source.sin6_addr) { IPAddress(loadingFrom: $0.baseAddress!) }
        return .datagram(length: n, source: address, sourcePort: UInt16(bigEndian: source.sin6_port))
    }

    /// Sends one datagram; the errno when the kernel refuses it (never retried: the control plane
    /// retransmits what needs it).
    func send(_ bytes: [UInt8], to destination: IPAddress, port: UInt16) -> Int32? {
        var address = Self.socketAddress(destination, port: port)
        let n = bytes.withUnsafeBytes { payload in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, payload.baseAddress, payload.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        }
        return n < 0 ? errno : nil
    }

    /// `address` (IPv4 as IPv4-mapped) as an AF_INET6 socket address.
    static func socketAddress(_ address: IPAddress, port: UInt16) -> sockaddr_in6 {
        var result = sockaddr_in6()
        result.sin6_family = sa_family_t(AF_INET6)
        result.sin6_port = port.bigEndian
        withUnsafeMutableBytes(of: &result.sin6_addr) { address.store(to: $0.baseAddress!) }
        return result
    }
}
