import CXDP
import Glibc

// Netlink plumbing shared by the rtnetlink and generic netlink queries: request building, one
// request/reply exchange, and bounds-checked parsing. Control path only: clarity over allocation.
// Every parser works on byte slices and stops at the first thing that does not fit, so a truncated
// or odd kernel reply yields fewer messages or attributes, never a crash.

extension ArraySlice where Element == UInt8 {
    /// A host-order value at `offset` from the slice's start, or nil if it would run past the end.
    func load<T: BitwiseCopyable>(_ type: T.Type, at offset: Int = 0) -> T? {
        guard offset >= 0, count - offset >= MemoryLayout<T>.size else { return nil }
        return withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
    }
}

/// Netlink pads every header and attribute to 4 bytes.
@inline(__always) func netlinkAlign(_ length: Int) -> Int { (length + 3) & ~3 }

/// One attribute: its type (nested/byte-order flag bits cleared) and value bytes.
struct NetlinkAttribute {
    let type: UInt16
    let value: ArraySlice<UInt8>

    /// The value as a host-order integer, nil unless it is exactly that wide.
    func integer<T: FixedWidthInteger & BitwiseCopyable>(_: T.Type) -> T? {
        value.count == MemoryLayout<T>.size ? value.load(T.self) : nil
    }

    /// The attributes of `bytes`, up to the first malformed one.
    static func parse(_ bytes: ArraySlice<UInt8>) -> [NetlinkAttribute] {
        var attributes: [NetlinkAttribute] = []
        var rest = bytes
        while let length = rest.load(UInt16.self).map(Int.init), let type = rest.load(UInt16.self, at: 2),
              length >= 4, length <= rest.count {
            let start = rest.startIndex
            attributes.append(NetlinkAttribute(type: type & 0x3fff, value: rest[(start + 4)..<(start + length)]))
            rest = rest.dropFirst(Swift.min(netlinkAlign(length), rest.count))
        }
        return attributes
    }
}

extension Array where Element == NetlinkAttribute {
    /// The first attribute of `type` (kernel attribute enums are imported with various integer types).
    func attribute<T: BinaryInteger>(_ type: T) -> NetlinkAttribute? {
        first { $0.type == UInt16(truncatingIfNeeded: type) }
    }
}

/// One message of a reply: its type and the bytes after the nlmsghdr.
struct NetlinkMessage {
    let type: UInt16
    let sequence: UInt32
    let payload: ArraySlice<UInt8>

    /// The fixed family header (rtmsg, ndmsg, …) at the start of the payload, nil if truncated.
    func header<T: BitwiseCopyable>(_: T.Type) -> T? { payload.load(T.self) }

    /// The attributes after a fixed family header of type `T`; empty if the payload is too short.
    func attributes<T>(after _: T.Type) -> [NetlinkAttribute] {
        let skip = netlinkAlign(MemoryLayout<T>.size)
        guard payload.count >= skip else { return [] }
        return NetlinkAttribute.parse(payload.dropFirst(skip))
    }

    /// The messages packed in one datagram, up to the first malformed one.
    static func parse(_ bytes: ArraySlice<UInt8>) -> [NetlinkMessage] {
        let headerSize = MemoryLayout<nlmsghdr>.size
        var messages: [NetlinkMessage] = []
        var rest = bytes
        while let header = rest.load(nlmsghdr.self), Int(header.nlmsg_len) >= headerSize,
              Int(header.nlmsg_len) <= rest.count {
            let start = rest.startIndex
            let payload = rest[(start + headerSize)..<(start + Int(header.nlmsg_len))]
            messages.append(NetlinkMessage(type: header.nlmsg_type, sequence: header.nlmsg_seq, payload: payload))
            rest = rest.dropFirst(Swift.min(netlinkAlign(Int(header.nlmsg_len)), rest.count))
        }
        return messages
    }
}

/// A request under construction: nlmsghdr, a fixed family header, then attributes.
struct NetlinkRequest {
    private(set) var bytes: [UInt8]
    let name: String

    /// `name` labels errors ("RTM_GETROUTE"); `flags` are added to NLM_F_REQUEST | NLM_F_ACK.
    init<Header: BitwiseCopyable>(_ name: String, type: UInt16, flags: Int32 = 0, header: Header) {
        self.name = name
        var message = nlmsghdr()
        message.nlmsg_type = type
        message.nlmsg_flags = UInt16(truncatingIfNeeded: NLM_F_REQUEST | NLM_F_ACK | flags)
        bytes = withUnsafeBytes(of: message) { Array($0) }
        append(withUnsafeBytes(of: header) { Array($0) })
    }

    mutating func add<T: BinaryInteger>(_ type: T, _ value: [UInt8]) {
        let length = 4 + value.count
        append(withUnsafeBytes(of: UInt16(length)) { Array($0) } + withUnsafeBytes(of: UInt16(truncatingIfNeeded: type)) { Array($0) } + value)
    }

    mutating func add<T: BinaryInteger, V: FixedWidthInteger & BitwiseCopyable>(_ type: T, integer value: V) {
        add(type, withUnsafeBytes(of: value) { Array($0) })
    }

    private mutating func append(_ data: [UInt8]) {
        bytes += data + [UInt8](repeating: 0, count: netlinkAlign(data.count) - data.count)
    }

    /// The finished message: length and sequence number filled in.
    func encoded(sequence: UInt32) -> [UInt8] {
        var result = bytes
        let length = UInt32(result.count)
        result.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: length, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: sequence, toByteOffset: 8, as: UInt32.self)
        }
        return result
    }
}

/// A netlink socket. Requests go one at a time; a reply is collected until its ack, NLMSG_DONE or
/// NLMSG_ERROR, with a receive timeout so a silent kernel cannot hang the control path.
final class NetlinkSocket {
    let fd: Int32
    private var sequence: UInt32 = 0

    /// `groups` subscribes to rtnetlink multicast groups (RTMGRP_* bits), for monitors.
    init(protocol netlinkProtocol: Int32, groups: UInt32 = 0, timeoutSeconds: Int = 2) throws {
        fd = socket(vs_af_netlink, vs_sock_raw | vs_sock_cloexec, netlinkProtocol)
        guard fd >= 0 else { throw SystemError("socket(AF_NETLINK)") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(vs_af_netlink)
        address.nl_groups = groups
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
        }
        guard rc == 0 else {
            let error = SystemError("bind(AF_NETLINK)")
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// Sends `request` and returns the reply messages, without the closing ack or NLMSG_DONE.
    /// A kernel error becomes a SystemError carrying the kernel's errno.
    func exchange(_ request: NetlinkRequest) throws -> [NetlinkMessage] {
        sequence &+= 1
        let bytes = request.encoded(sequence: sequence)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else {
            throw SystemError("netlink send \(request.name)")
        }
        var replies: [NetlinkMessage] = []
        while true {
            guard let datagram = try receive() else {
                throw SystemError("netlink receive \(request.name)", errno: ETIMEDOUT)
            }
            for message in NetlinkMessage.parse(datagram[...]) where message.sequence == sequence {
                switch Int32(message.type) {
                case NLMSG_DONE:
                    return replies
                case NLMSG_ERROR:
                    // nlmsgerr: a negative errno, or 0 for the ack that ends a non-dump request.
                    let code = message.payload.load(Int32.self) ?? -EPROTO
                    if code == 0 { return replies }
                    throw SystemError("netlink \(request.name)", errno: code < 0 ? -code : code)
                default:
                    replies.append(message)
                }
            }
        }
    }

    /// For a nonblocking socket joined to multicast groups: reads everything pending. True if
    /// any notification arrived, or if some were lost to a socket-buffer overflow (ENOBUFS),
    /// which means "re-read everything".
    func drainNotifications() -> Bool {
        var changed = false
        while true {
            do {
                guard let datagram = try receive() else { return changed }
                if !datagram.isEmpty { changed = true }
            } catch let error as SystemError where error.errno == ENOBUFS {
                changed = true
            } catch {
                return changed
            }
        }
    }

    /// One datagram; nil when nothing is pending (timeout or nonblocking). An overflow of the
    /// socket buffer (ENOBUFS) throws: the caller has lost messages.
    func receive() throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            // MSG_TRUNC reports the datagram's real length, so an oversized one is noticed.
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_TRUNC)) }
            if n >= 0 {
                guard n <= buffer.count else { throw SystemError("netlink receive", errno: EMSGSIZE) }
                return Array(buffer[0..<n])
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return nil
            default: throw SystemError("netlink receive")
            }
        }
    }
}
