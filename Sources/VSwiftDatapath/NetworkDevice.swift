import CXDP
import Glibc

/// Facts about a kernel network device, read by name.
public struct NetworkDevice: Sendable {
    public let name: String
    public let ifindex: UInt32

    /// Looks the device up in the current network namespace.
    public init(name: String) throws(DatapathError) {
        guard !name.isEmpty, name.utf8.count < Int(IF_NAMESIZE) else { throw .noSuchDevice(name) }
        let index = if_nametoindex(name)
        guard index != 0 else { throw .noSuchDevice(name) }
        self.name = name
        self.ifindex = index
    }

    /// Number of rx queues: the XDP program sees a frame on the queue it arrived on, so one AF_XDP
    /// socket is needed per rx queue. Asked over netlink, which answers for the caller's network
    /// namespace (sysfs shows the namespace it was mounted in); sysfs only as a fallback.
    public var rxQueueCount: Int {
        // The queues in use (ethtool channels) when the driver says; the ones allocated otherwise.
        let channels = vs_if_rx_channels(name)
        if channels > 0 { return Int(channels) }
        if let count = Netlink.rxQueueCount(ifindex: ifindex), count > 0 { return count }
        guard let dir = opendir("/sys/class/net/\(name)/queues") else { return 1 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let entryName = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if entryName.hasPrefix("rx-") { count += 1 }
        }
        return max(count, 1)
    }

    /// The device's Ethernet address, if it has one.
    public var macAddress: [UInt8]? {
        var mac = [UInt8](repeating: 0, count: 6)
        let rc = mac.withUnsafeMutableBufferPointer { vs_if_get_mac(name, $0.baseAddress) }
        return rc == 0 ? mac : nil
    }

    /// The name of the device with this index, if there is one.
    public static func name(ifindex: UInt32) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard if_indextoname(ifindex, &buffer) != nil else { return nil }
        return String(cString: buffer)
    }

    /// Whether the device still exists with the same index (it may vanish under us).
    public var exists: Bool { if_nametoindex(name) == ifindex }
}
