import CXDP
import Glibc
import VSwiftPacket

// Underlay resolution for LISP encapsulation: which device and source address reach an RLOC, the
// next hop's MAC, and notice when any of that may have changed. Everything answers for the calling
// thread's network namespace.

/// The kernel's route to one destination, as `ip route get` shows it.
struct RouteAnswer: Equatable, Sendable {
    /// Output device.
    var ifindex: UInt32
    /// The source address the kernel would pick (RTA_PREFSRC), if it named one.
    var source: NetlinkAddress?
    /// The next hop, nil when the destination is on-link (then the destination is the next hop).
    var gateway: NetlinkAddress?
}

/// A neighbour table entry.
struct NeighbourAnswer: Equatable, Sendable {
    /// Link-layer address, first octet most significant; nil while unresolved.
    var mac: UInt64?
    /// NUD_* bits.
    var state: UInt16

    /// True when frames may be sent to `mac` now. STALE/DELAY/PROBE still carry a valid address:
    /// the kernel re-confirms it in the background, and our own traffic does not reach its
    /// confirmation logic anyway.
    var isUsable: Bool {
        let usable = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP
        return mac != nil && Int32(state) & usable != 0
    }
}

extension Netlink {
    /// One request/reply exchange on a fresh socket: queries are rare, and a private socket never
    /// sees another caller's replies.
    static func exchange(_ request: NetlinkRequest, protocol netlinkProtocol: Int32 = NETLINK_ROUTE) throws -> [NetlinkMessage] {
        try NetlinkSocket(protocol: netlinkProtocol).exchange(request)
    }

    /// The route to `destination` (RTM_GETROUTE for one address), nil when the kernel has none
    /// (unreachable, prohibited).
    static func route(to destination: NetlinkAddress) throws -> RouteAnswer? {
        var header = rtmsg()
        header.rtm_family = destination.family
        header.rtm_dst_len = destination.isIPv4 ? 32 : 128
        var request = NetlinkRequest("RTM_GETROUTE", type: UInt16(RTM_GETROUTE), header: header)
        request.add(RTA_DST.rawValue, destination.networkBytes)
        let replies: [NetlinkMessage]
        do {
            replies = try exchange(request)
        } catch let error as SystemError where [ENETUNREACH, EHOSTUNREACH, EACCES].contains(error.errno) {
            return nil
        }
        guard let reply = replies.first(where: { $0.type == RTM_NEWROUTE }) else { return nil }
        let attributes = reply.attributes(after: rtmsg.self)
        guard let ifindex = attributes.attribute(RTA_OIF.rawValue)?.integer(UInt32.self) else { return nil }
        // An IPv4 route may have an IPv6 next hop (RTA_VIA: a family, then the address).
        let gateway = attributes.attribute(RTA_GATEWAY.rawValue).flatMap { NetlinkAddress(networkBytes: $0.value) }
            ?? attributes.attribute(RTA_VIA.rawValue).flatMap { NetlinkAddress(networkBytes: $0.value.dropFirst(2)) }
        let source = attributes.attribute(RTA_PREFSRC.rawValue).flatMap { NetlinkAddress(networkBytes: $0.value) }
        return RouteAnswer(ifindex: ifindex, source: source, gateway: gateway)
    }

    /// The neighbour entry for `address` on device `ifindex`, nil when there is none.
    static func neighbour(_ address: NetlinkAddress, ifindex: UInt32) throws -> NeighbourAnswer? {
        var request = NetlinkRequest("RTM_GETNEIGH", type: UInt16(RTM_GETNEIGH), header: neighbourHeader(address, ifindex))
        request.add(NDA_DST, address.networkBytes)
        let replies: [NetlinkMessage]
        do {
            replies = try exchange(request)
        } catch let error as SystemError where error.errno == ENOENT {
            return nil
        }
        guard let reply = replies.first(where: { $0.type == RTM_NEWNEIGH }),
              let header = reply.header(ndmsg.self) else { return nil }
        let lladdr = reply.attributes(after: ndmsg.self).attribute(NDA_LLADDR)
        return NeighbourAnswer(mac: lladdr.flatMap { macValue($0.value) }, state: header.ndm_state)
    }

    /// Makes the kernel resolve `address` on `ifindex` itself (ARP request or neighbour
    /// solicitation) without us sending a packet. NTF_USE makes neigh_add call neigh_event_send
    /// instead of overwriting the entry: a missing entry is created (NLM_F_CREATE) in NUD_NONE
    /// and probed, a FAILED one is probed again, an INCOMPLETE one keeps its running probe, a
    /// STALE one is re-confirmed. The state passed is ignored then, except that NUD_PERMANENT
    /// would exempt a new entry from garbage collection, so NUD_NONE is passed.
    /// IPv6 caveat: with no packet to take a source from, the kernel sends a solicitation only
    /// once the device has a non-tentative link-local address; until its DAD ends (about a
    /// second after link-up) probes are skipped, and the kernel's retransmissions catch up.
    static func solicit(_ address: NetlinkAddress, ifindex: UInt32) throws {
        var header = neighbourHeader(address, ifindex)
        header.ndm_state = UInt16(NUD_NONE)
        header.ndm_flags = UInt8(NTF_USE)
        var request = NetlinkRequest("RTM_NEWNEIGH", type: UInt16(RTM_NEWNEIGH),
                                     flags: NLM_F_CREATE | NLM_F_REPLACE, header: header)
        request.add(NDA_DST, address.networkBytes)
        _ = try exchange(request)
    }

    /// The device's link-layer address (IFLA_ADDRESS; nil unless it has a 6-byte one) and MTU
    /// (IFLA_MTU; nil if the kernel reports none), from one RTM_GETLINK.
    static func link(ifindex: UInt32) throws -> (address: UInt64?, mtu: UInt32?) {
        let attributes = try linkAttributes(ifindex: ifindex)
        let mtu = attributes.attribute(IFLA_MTU).flatMap { attribute -> UInt32? in
            attribute.value.count >= 4 ? attribute.value.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } : nil
        }
        return (attributes.attribute(IFLA_ADDRESS).flatMap { macValue($0.value) }, mtu)
    }

    /// Every address configured in this namespace, both families (an RTM_GETADDR dump): a packet
    /// to one of them is for this host.
    static func localAddresses() throws -> [NetlinkAddress] {
        try localAddressDevices().map { $0.address }
    }

    /// Every address configured in this namespace with the device that holds it (the first one,
    /// when two devices hold the same address), both families, from one RTM_GETADDR dump.
    static func localAddressDevices() throws -> [(address: NetlinkAddress, ifindex: UInt32)] {
        var header = ifaddrmsg()
        header.ifa_family = UInt8(AF_UNSPEC)
        let request = NetlinkRequest("RTM_GETADDR", type: UInt16(RTM_GETADDR), flags: NLM_F_DUMP, header: header)
        var addresses: [(address: NetlinkAddress, ifindex: UInt32)] = []
        for reply in try exchange(request) where reply.type == RTM_NEWADDR {
            // IFA_LOCAL is the host's own address; IFA_ADDRESS is the peer on point-to-point links
            // and the only one IPv6 sends otherwise.
            let attributes = reply.attributes(after: ifaddrmsg.self)
            guard let message = reply.header(ifaddrmsg.self),
                  let attribute = attributes.attribute(IFA_LOCAL) ?? attributes.attribute(IFA_ADDRESS),
                  let address = NetlinkAddress(networkBytes: attribute.value),
                  !addresses.contains(where: { $0.address == address }) else { continue }
            addresses.append((address, message.ifa_index))
        }
        return addresses
    }

    /// The attributes of one device (RTM_GETLINK); throws if the kernel does not know it.
    static func linkAttributes(ifindex: UInt32) throws -> [NetlinkAttribute] {
        var header = ifinfomsg()
        header.ifi_family = UInt8(AF_UNSPEC)
        header.ifi_index = Int32(bitPattern: ifindex)
        let request = NetlinkRequest("RTM_GETLINK", type: UInt16(RTM_GETLINK), header: header)
        return try exchange(request).first { $0.type == RTM_NEWLINK }?.attributes(after: ifinfomsg.self) ?? []
    }

    private static func neighbourHeader(_ address: NetlinkAddress, _ ifindex: UInt32) -> ndmsg {
        var header = ndmsg()
        header.ndm_family = address.family
        header.ndm_ifindex = Int32(bitPattern: ifindex)
        return header
    }

    /// A 6-byte link-layer address as a 48-bit value, first octet most significant.
    private static func macValue(_ bytes: ArraySlice<UInt8>) -> UInt64? {
        bytes.count == 6 ? bytes.reduce(0) { $0 << 8 | UInt64($1) } : nil
    }
}

/// Tells the resolver that links, neighbours, addresses or routes changed, so cached underlay
/// answers must be looked up again. Poll `fd` for input, then call `drain()`.
final class NetlinkMonitor {
    private let socket: NetlinkSocket

    var fd: Int32 { socket.fd }

    init() throws {
        let groups = RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE
        socket = try NetlinkSocket(protocol: NETLINK_ROUTE, groups: UInt32(groups))
        let rc = vs_set_nonblocking(socket.fd)
        guard rc == 0 else { throw SystemError("fcntl(O_NONBLOCK) netlink monitor", negativeErrno: rc) }
        // Room for a burst (a link flap brings many neighbour and route messages); overflow is
        // survivable but costs a full re-resolution.
        var size: Int32 = 1 << 20
        setsockopt(socket.fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Reads everything pending. True if any notification arrived, or if some were lost to a
    /// socket-buffer overflow (ENOBUFS), which means "re-read everything".
    func drain() -> Bool {
        socket.drainNotifications()
    }
}

// MARK: - Generic netlink: the "netdev" family

// From linux/netdev.h (kernel 6.8+), which this system's uapi headers do not ship.
private let netdevCommandDevGet: UInt8 = 1 // NETDEV_CMD_DEV_GET
private let netdevAttributeIfindex: UInt16 = 1 // NETDEV_A_DEV_IFINDEX
private let netdevAttributeXskFeatures: UInt16 = 6 // NETDEV_A_DEV_XSK_FEATURES (u64)
private let netdevXskFlagTxChecksum: UInt64 = 2 // NETDEV_XSK_FLAGS_TX_CHECKSUM

extension Netlink {
    /// Whether the device's driver computes L4 checksums requested through AF_XDP TX metadata
    /// (NETDEV_XSK_FLAGS_TX_CHECKSUM). False when unsupported or unknown (old kernel, no device,
    /// any netlink failure): the caller then computes checksums in software.
    static func xskTxChecksumSupported(ifindex: UInt32) -> Bool {
        guard let features = try? xskFeatures(ifindex: ifindex) else { return false }
        return features & netdevXskFlagTxChecksum != 0
    }

    /// NETDEV_A_DEV_XSK_FEATURES of the device, nil if the kernel does not report it.
    private static func xskFeatures(ifindex: UInt32) throws -> UInt64? {
        guard let family = try genericFamily("netdev") else { return nil }
        var request = NetlinkRequest("NETDEV_CMD_DEV_GET", type: family,
                                     header: genlmsghdr(cmd: netdevCommandDevGet, version: 1, reserved: 0))
        request.add(netdevAttributeIfindex, integer: ifindex)
        let reply = try exchange(request, protocol: NETLINK_GENERIC).first { $0.type == family }
        return reply?.attributes(after: genlmsghdr.self).attribute(netdevAttributeXskFeatures)?.integer(UInt64.self)
    }

    /// The id of generic netlink family `name` (CTRL_CMD_GETFAMILY), nil if not registered.
    static func genericFamily(_ name: String) throws -> UInt16? {
        let controller = UInt16(GENL_ID_CTRL)
        var request = NetlinkRequest("CTRL_CMD_GETFAMILY", type: controller,
                                     header: genlmsghdr(cmd: UInt8(CTRL_CMD_GETFAMILY), version: 1, reserved: 0))
        request.add(CTRL_ATTR_FAMILY_NAME, Array(name.utf8) + [0])
        let replies: [NetlinkMessage]
        do {
            replies = try exchange(request, protocol: NETLINK_GENERIC)
        } catch let error as SystemError where error.errno == ENOENT {
            return nil
        }
        let reply = replies.first { $0.type == controller }
        return reply?.attributes(after: genlmsghdr.self).attribute(CTRL_ATTR_FAMILY_ID)?.integer(UInt16.self)
    }
}
