import CXDP
import Glibc

/// rtnetlink and generic netlink queries (UnderlayNetlink.swift; plumbing in NetlinkSocket.swift).
/// Netlink answers for the calling thread's network namespace, unlike /sys, which shows the
/// namespace it was mounted in.
enum Netlink {
    /// IFLA_NUM_RX_QUEUES of the device, or nil if the kernel does not say.
    static func rxQueueCount(ifindex: UInt32) -> Int? {
        guard let attributes = try? linkAttributes(ifindex: ifindex) else { return nil }
        return attributes.attribute(IFLA_NUM_RX_QUEUES)?.integer(UInt32.self).map(Int.init)
    }
}
