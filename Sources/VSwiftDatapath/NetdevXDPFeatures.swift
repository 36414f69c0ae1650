import CXDP
import Glibc

// Whether XDP_REDIRECT can send to a device (the XDP flow cache's redirect targets, DESIGN.md
// "Megaflows and revalidation", *Redirect targets*). Since Linux 6.3 every device announces its XDP
// features (`xdp_features`), readable with the generic netlink family "netdev"
// (Documentation/netlink/specs/netdev.yaml): NETDEV_XDP_ACT_NDO_XMIT says the device accepts
// redirected frames, and `__xdp_enqueue` refuses one without it. veth sets it only while its
// *peer* runs NAPI (an XDP program or GRO on the peer, `veth_set_xdp_features` in
// drivers/net/veth.c); without it the kernel drops what XDP redirects there. Changes are announced
// on the family's "mgmt" multicast group (NETDEV_CMD_DEV_CHANGE_NTF). Control path only.

/// From include/uapi/linux/netdev.h (6.3+), which this system's uapi headers do not ship.
enum NetdevGenl {
    static let familyName = "netdev"
    static let managementGroup = "mgmt"  // NETDEV_MCGRP_MGMT
    static let commandDevGet: UInt8 = 1  // NETDEV_CMD_DEV_GET
    static let commandDevChangeNotification: UInt8 = 4  // NETDEV_CMD_DEV_CHANGE_NTF
    static let attributeIfindex: UInt16 = 1  // NETDEV_A_DEV_IFINDEX (u32)
    static let attributeXDPFeatures: UInt16 = 3  // NETDEV_A_DEV_XDP_FEATURES (u64)

    /// NETDEV_A_DEV_* of one device message (a NETDEV_CMD_DEV_GET reply or a notification).
    struct Device: Equatable, Sendable {
        var ifindex: UInt32
        var xdpFeatures: XDPFeatures
    }

    /// The device a netdev message describes, nil unless it carries exactly-sized ifindex and
    /// xdp_features attributes (hostile or truncated input gives nil, never a trap).
    static func device(_ message: NetlinkMessage) -> Device? {
        let attributes = message.attributes(after: genlmsghdr.self)
        guard let ifindex = attributes.attribute(attributeIfindex)?.integer(UInt32.self),
              let features = attributes.attribute(attributeXDPFeatures)?.integer(UInt64.self) else { return nil }
        return Device(ifindex: ifindex, xdpFeatures: XDPFeatures(rawValue: features))
    }

    /// The family id and the id of multicast group `group` from a CTRL_CMD_GETFAMILY reply
    /// (CTRL_ATTR_MCAST_GROUPS: a nest of nests, each with CTRL_ATTR_MCAST_GRP_NAME and _ID).
    /// nil without a family id; the group nil when not listed or malformed.
    static func family(_ message: NetlinkMessage, group: String) -> (id: UInt16, group: UInt32?)? {
        let attributes = message.attributes(after: genlmsghdr.self)
        guard let id = attributes.attribute(CTRL_ATTR_FAMILY_ID)?.integer(UInt16.self) else { return nil }
        var groupID: UInt32?
        if let groups = attributes.attribute(CTRL_ATTR_MCAST_GROUPS) {
            for entry in NetlinkAttribute.parse(groups.value) {
                let fields = NetlinkAttribute.parse(entry.value)
                guard let name = fields.attribute(CTRL_ATTR_MCAST_GRP_NAME),
                      let value = fields.attribute(CTRL_ATTR_MCAST_GRP_ID)?.integer(UInt32.self) else { continue }
                // A NUL-terminated string; anything after the first NUL is ignored.
                if Array(name.value.prefix { $0 != 0 }) == Array(group.utf8) { groupID = value }
            }
        }
        return (id, groupID)
    }
}

/// enum netdev_xdp_act.
struct XDPFeatures: OptionSet, Sendable, Equatable {
    let rawValue: UInt64
    static let basic = XDPFeatures(rawValue: 1)
    static let redirect = XDPFeatures(rawValue: 2)
    /// The device implements ndo_xdp_xmit *now* (veth: while its peer runs NAPI).
    static let ndoXmit = XDPFeatures(rawValue: 4)
}

/// Can the XDP flow cache send frames to this device with XDP_REDIRECT?
enum RedirectCapability: Equatable, Sendable {
    case capable
    /// It cannot: the operator's explanation.
    case incapable(String)
    /// The kernel does not say (before 6.3, or the query failed): treated as capable, as before.
    case unknown

    static let vethPeerWithoutNAPI = "veth peer without NAPI: enable GRO or XDP on the peer"
    static let noNDOXmit = "the driver does not accept redirected frames (no ndo_xdp_xmit)"

    /// What `features` say about a device of link kind `kind` ("veth", …; nil if unknown).
    static func from(features: XDPFeatures?, kind: String?) -> RedirectCapability {
        guard let features else { return .unknown }
        if features.contains(.ndoXmit) { return .capable }
        return .incapable(kind == "veth" ? vethPeerWithoutNAPI : noNDOXmit)
    }

    /// The problem to report, nil when the device may be a target.
    var problem: String? {
        if case .incapable(let reason) = self { return reason }
        return nil
    }
}

// From linux/if_link.h.
private let iflaLinkInfo: UInt16 = 18  // IFLA_LINKINFO
private let iflaInfoKind: UInt16 = 1  // IFLA_INFO_KIND

extension Netlink {
    /// NETDEV_A_DEV_XDP_FEATURES of the device, nil when the kernel does not report it.
    static func xdpFeatures(ifindex: UInt32) -> XDPFeatures? {
        guard let family = try? genericFamily(NetdevGenl.familyName) else { return nil }
        var request = NetlinkRequest("NETDEV_CMD_DEV_GET", type: family,
                                     header: genlmsghdr(cmd: NetdevGenl.commandDevGet, version: 1, reserved: 0))
        request.add(NetdevGenl.attributeIfindex, integer: ifindex)
        guard let replies = try? exchange(request, protocol: NETLINK_GENERIC) else { return nil }
        return replies.lazy.filter { $0.type == family }.compactMap(NetdevGenl.device).first { $0.ifindex == ifindex }?.xdpFeatures
    }

    /// The device's link kind (IFLA_INFO_KIND: "veth", "tun", …), nil for a plain device.
    static func linkKind(ifindex: UInt32) -> String? {
        guard let info = try? linkAttributes(ifindex: ifindex).attribute(iflaLinkInfo),
              let kind = NetlinkAttribute.parse(info.value).attribute(iflaInfoKind) else { return nil }
        return String(decoding: kind.value.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// Whether the flow cache may redirect to the device now.
    static func redirectCapability(ifindex: UInt32) -> RedirectCapability {
        guard let features = xdpFeatures(ifindex: ifindex) else { return .unknown }
        return RedirectCapability.from(features: features, kind: features.contains(.ndoXmit) ? nil : linkKind(ifindex: ifindex))
    }
}

/// Tells the installer that some device's netdev attributes changed (the "mgmt" group of the
/// netdev family: a device added, removed, or its XDP features changed). Nonblocking; poll or
/// call `drain()` periodically.
final class NetdevMonitor {
    private let socket: NetlinkSocket

    /// nil when the kernel has no netdev family or no "mgmt" group (before 6.3).
    init?() {
        guard let socket = try? NetlinkSocket(protocol: NETLINK_GENERIC) else { return nil }
        let controller = UInt16(GENL_ID_CTRL)
        var request = NetlinkRequest("CTRL_CMD_GETFAMILY", type: controller,
                                     header: genlmsghdr(cmd: UInt8(CTRL_CMD_GETFAMILY), version: 1, reserved: 0))
        request.add(CTRL_ATTR_FAMILY_NAME, Array(NetdevGenl.familyName.utf8) + [0])
        guard let replies = try? socket.exchange(request),
              let family = replies.lazy.filter({ $0.type == controller }).compactMap({
                  NetdevGenl.family($0, group: NetdevGenl.managementGroup) }).first,
              var group = family.group else { return nil }
        // SOL_NETLINK (270), NETLINK_ADD_MEMBERSHIP (1): join a multicast group by id.
        guard setsockopt(socket.fd, 270, 1, &group, socklen_t(MemoryLayout<UInt32>.size)) == 0,
              vs_set_nonblocking(socket.fd) == 0 else { return nil }
        self.socket = socket
    }

    /// Reads everything pending; true if anything arrived or was lost (ENOBUFS: re-read all).
    func drain() -> Bool {
        socket.drainNotifications()
    }
}
