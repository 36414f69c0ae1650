import CXDP
import Glibc

/// Minimal rtnetlink queries. Netlink answers for the calling thread's network namespace, unlike
/// /sys, which shows the namespace it was mounted in.
enum Netlink {
    /// IFLA_NUM_RX_QUEUES of the device, or nil if the kernel does not say.
    static func rxQueueCount(ifindex: UInt32) -> Int? {
        let fd = socket(vs_af_netlink, vs_sock_raw | vs_sock_cloexec, NETLINK_ROUTE)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        // RTM_GETLINK for one ifindex: nlmsghdr + ifinfomsg.
        let headerLength = MemoryLayout<nlmsghdr>.size
        let requestLength = headerLength + MemoryLayout<ifinfomsg>.size
        var request = [UInt8](repeating: 0, count: requestLength)
        request.withUnsafeMutableBytes { raw in
            var header = nlmsghdr()
            header.nlmsg_len = UInt32(requestLength)
            header.nlmsg_type = UInt16(RTM_GETLINK)
            header.nlmsg_flags = UInt16(NLM_F_REQUEST)
            header.nlmsg_seq = 1
            raw.storeBytes(of: header, as: nlmsghdr.self)
            var info = ifinfomsg()
            info.ifi_family = UInt8(AF_UNSPEC)
            info.ifi_index = Int32(bitPattern: ifindex)
            raw.storeBytes(of: info, toByteOffset: headerLength, as: ifinfomsg.self)
        }
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == requestLength else { return nil }

        var reply = [UInt8](repeating: 0, count: 64 * 1024)
        let n = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n >= headerLength else { return nil }
        return reply.withUnsafeBytes { raw -> Int? in
            let header = raw.loadUnaligned(as: nlmsghdr.self)
            guard header.nlmsg_type == UInt16(RTM_NEWLINK), Int(header.nlmsg_len) <= n else { return nil }
            // Attributes follow the (4-byte aligned) ifinfomsg.
            var offset = headerLength + ((MemoryLayout<ifinfomsg>.size + 3) & ~3)
            while offset + 4 <= Int(header.nlmsg_len) {
                let length = Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
                let type = Int(raw.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self)) & 0x3fff
                guard length >= 4, offset + length <= Int(header.nlmsg_len) else { return nil }
                if type == Int(IFLA_NUM_RX_QUEUES), length >= 8 {
                    return Int(raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
                }
                offset += (length + 3) & ~3
            }
            return nil
        }
    }
}
