import CXDP
import Glibc

/// Raw AF_PACKET sockets for the frames the bench sends itself (the sink's learning frame, the loop
/// generator's seed).
enum PacketSocket {
    /// A raw packet socket bound to `ifindex` (of the calling thread's namespace), for sending only.
    static func open(ifindex: UInt32) -> Int32 {
        let fd = socket(AF_PACKET, vs_sock_raw | vs_sock_cloexec, 0)
        guard fd >= 0 else { return -1 }
        // struct sockaddr_ll (not in Swift's Glibc module): u16 family, be16 protocol, i32 ifindex,
        // u16 hatype, u8 pkttype, u8 halen, u8 addr[8].
        var address = [UInt8](repeating: 0, count: 20)
        address[0] = UInt8(AF_PACKET & 0xff)
        address[1] = UInt8(AF_PACKET >> 8)
        for i in 0..<4 { address[4 + i] = UInt8(truncatingIfNeeded: ifindex >> (8 * UInt32(i))) }
        let rc = address.withUnsafeBytes {
            bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(20))
        }
        guard rc == 0 else {
            let saved = errno
            Glibc.close(fd)
            errno = saved
            return -1
        }
        return fd
    }
}
