import CXDP
import Glibc
import Testing
import VSwiftTesting
@testable import VSwiftDatapath

/// The netdev generic-netlink replies the XDP flow cache reads a device's redirect capability
/// from (NETDEV_A_DEV_XDP_FEATURES, include/uapi/linux/netdev.h), parsed as hostile input: a
/// truncated, oversized or odd message gives nil, never a trap.
@Suite("netdev genl: XDP features")
struct NetdevXDPFeaturesTests {
    /// A netdev message (genlmsghdr then the attributes) as the kernel sends it.
    static func message(_ attributes: [(UInt16, [UInt8])], type: UInt16 = 30) -> [UInt8] {
        var request = NetlinkRequest("test", type: type, header: genlmsghdr(cmd: 1, version: 1, reserved: 0))
        for (kind, value) in attributes { request.add(kind, value) }
        return request.encoded(sequence: 1)
    }

    static func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

    static func device(_ bytes: [UInt8]) -> NetdevGenl.Device? {
        NetlinkMessage.parse(bytes[...]).first.flatMap(NetdevGenl.device)
    }

    @Test func aDeviceReplyGivesItsIfindexAndFeatures() {
        let reply = Self.message([(1, Self.bytes(UInt32(7))), (3, Self.bytes(UInt64(0x7)))])
        #expect(Self.device(reply) == .init(ifindex: 7, xdpFeatures: [.basic, .redirect, .ndoXmit]))
        let noXmit = Self.message([(3, Self.bytes(UInt64(0x3))), (1, Self.bytes(UInt32(9)))])
        #expect(Self.device(noXmit)?.xdpFeatures.contains(.ndoXmit) == false)
    }

    @Test func missingOrWronglySizedAttributesGiveNil() {
        #expect(Self.device(Self.message([(1, Self.bytes(UInt32(7)))])) == nil, "no xdp_features")
        #expect(Self.device(Self.message([(3, Self.bytes(UInt64(4)))])) == nil, "no ifindex")
        #expect(Self.device(Self.message([(1, Self.bytes(UInt32(7))), (3, Self.bytes(UInt32(4)))])) == nil, "u32 features")
        #expect(Self.device(Self.message([(1, [7]), (3, Self.bytes(UInt64(4)))])) == nil, "1-byte ifindex")
        #expect(Self.device(Self.message([])) == nil)
        // A payload shorter than genlmsghdr.
        #expect(NetdevGenl.device(NetlinkMessage(type: 30, sequence: 1, payload: [1, 1][...])) == nil)
    }

    @Test func everyTruncationAndAnAttributeOverrunningTheMessageAreSafe() {
        let reply = Self.message([(1, Self.bytes(UInt32(7))), (3, Self.bytes(UInt64(4)))])
        for cut in 0..<reply.count {
            #expect(Self.device(Array(reply[0..<cut])) == nil, "cut at \(cut)")
        }
        // The features attribute claims 200 bytes.
        var overrun = reply
        overrun[16 + 4 + 8] = 200
        #expect(Self.device(overrun) == nil)
    }

    @Test func randomBytesNeverTrap() {
        var random = SplitMix64(seed: 17)
        for _ in 0..<2000 {
            let length = Int(random.next() % 96)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if bytes.count >= 4 {
                // Often a plausible nlmsg_len, so the attribute parser runs on garbage.
                let claimed = UInt32(bytes.count)
                withUnsafeBytes(of: claimed) { for i in 0..<4 { bytes[i] = $0[i] } }
            }
            for message in NetlinkMessage.parse(bytes[...]) {
                _ = NetdevGenl.device(message)
                _ = NetdevGenl.family(message, group: "mgmt")
            }
        }
    }

    /// CTRL_CMD_GETFAMILY's reply: the family id and, nested twice, the multicast groups.
    static func familyReply(groups: [[(UInt16, [UInt8])]], id: [UInt8] = bytes(UInt16(33))) -> [UInt8] {
        func attribute(_ kind: UInt16, _ value: [UInt8]) -> [UInt8] {
            let length = UInt16(4 + value.count)
            let padded = value + [UInt8](repeating: 0, count: netlinkAlign(value.count) - value.count)
            return bytes(length) + bytes(kind) + padded
        }
        let nest = groups.enumerated().flatMap { index, fields in
            attribute(UInt16(index + 1), fields.flatMap { attribute($0.0, $0.1) })
        }
        return message([(UInt16(CTRL_ATTR_FAMILY_ID), id), (UInt16(CTRL_ATTR_MCAST_GROUPS), nest)], type: UInt16(GENL_ID_CTRL))
    }

    static func family(_ bytes: [UInt8]) -> (id: UInt16, group: UInt32?)? {
        NetlinkMessage.parse(bytes[...]).first.flatMap { NetdevGenl.family($0, group: "mgmt") }
    }

    @Test func theManagementGroupIsFoundAmongTheFamilysGroups() throws {
        let name = UInt16(CTRL_ATTR_MCAST_GRP_NAME), id = UInt16(CTRL_ATTR_MCAST_GRP_ID)
        let reply = Self.familyReply(groups: [
            [(name, Array("page-pool".utf8) + [0]), (id, Self.bytes(UInt32(5)))],
            [(name, Array("mgmt".utf8) + [0]), (id, Self.bytes(UInt32(6)))],
        ])
        let family = try #require(Self.family(reply))
        #expect(family.id == 33 && family.group == 6)
        // A name that only starts with "mgmt", a group id of the wrong width, a group without id.
        let odd = Self.familyReply(groups: [
            [(name, Array("mgmtx".utf8) + [0]), (id, Self.bytes(UInt32(5)))],
            [(name, Array("mgmt".utf8) + [0]), (id, Self.bytes(UInt16(6)))],
            [(name, Array("mgmt".utf8))],
        ])
        #expect(Self.family(odd)?.id == 33 && Self.family(odd)?.group == nil)
        #expect(Self.family(Self.familyReply(groups: [], id: [1])) == nil, "a 1-byte family id")
        for cut in 0..<reply.count { _ = Self.family(Array(reply[0..<cut])) }
    }

    @Test func aVethWithoutNDOXmitIsExplained() {
        #expect(RedirectCapability.from(features: [.basic, .redirect, .ndoXmit], kind: "veth") == .capable)
        #expect(RedirectCapability.from(features: [.basic, .redirect], kind: "veth")
                == .incapable(RedirectCapability.vethPeerWithoutNAPI))
        #expect(RedirectCapability.from(features: [], kind: nil) == .incapable(RedirectCapability.noNDOXmit))
        #expect(RedirectCapability.from(features: nil, kind: "veth") == .unknown)
        #expect(RedirectCapability.unknown.problem == nil && RedirectCapability.capable.problem == nil)
    }
}
