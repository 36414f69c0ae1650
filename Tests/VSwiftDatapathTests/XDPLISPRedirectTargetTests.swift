import Glibc
import Testing
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// A LISP port whose encapsulated frames leave by a device XDP_REDIRECT cannot send to now (no
/// NETDEV_XDP_ACT_NDO_XMIT: a veth underlay whose peer runs no NAPI) has no direct egress: no
/// template, no entry redirecting into the device; its flows wait and are installed when the
/// device regains the capability (DESIGN.md, *Redirect targets*). The installer and the real
/// redirect program (BPF_PROG_RUN), with the LISP rig (egress device slot 4, LISP port slot 9).
@Suite(.serialized) struct XDPLISPRedirectTargetTests {
    typealias Rig = XDPFlowCacheLISPRevalidationTests.Rig
    static let lo = UInt32(if_nametoindex("lo"))

    static func direct(_ info: XDPCachePortInfo?) -> Bool {
        guard let info, case .lisp(let lisp) = info.cache.kind else { return false }
        return lisp.directEgress && info.lisp != nil
    }

    @Test func theEffectivePortsTakeDirectEgressAwayFromALISPPortWhoseEgressCannotBeRedirectedTo() {
        let hop = XDPFlowCacheLISPEgressTests.hop()
        let offered: [UInt32: XDPCachePortInfo] = [
            1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 1),
            2: XDPFlowCacheLISPEgress.portInfo(slot: 9, options: Rig.options, nextHops: [hop], redirectTargets: [4]),
        ]
        #expect(Self.direct(offered[2]))
        #expect(XDPFlowCacheRedirectTargets.effective(offered, problems: [:]) == offered)
        let without = XDPFlowCacheRedirectTargets.effective(offered, problems: [4: RedirectCapability.vethPeerWithoutNAPI])
        #expect(!Self.direct(without[2]))
        #expect(without[2]?.cache.kind == .lisp(.init(fixedRemote: true, keyFromFlow: false, directEgress: false)))
        #expect(without[1] == offered[1], "the input device is not the egress")
        let inputIncapable = XDPFlowCacheRedirectTargets.effective(offered, problems: [1: RedirectCapability.noNDOXmit])
        #expect(inputIncapable[1]?.cache.redirectTarget == false && Self.direct(inputIncapable[2]))
    }

    @Test func anEgressLosingNDOXmitTakesTheEncapsulatingEntryOutAndRegainingItPutsItBack() throws {
        let rig = try Rig()
        rig.installer.setDevicePort(1, ifindex: Self.lo, capability: .capable)
        rig.installer.setDevicePort(4, ifindex: Self.lo, capability: .capable)
        let frame = Build.ipv4UDP()
        let hop = XDPFlowCacheLISPEgressTests.hop()
        rig.publish([hop])
        rig.miss(frame)
        #expect(rig.installer.entryCount == 1)
        #expect(try rig.run(frame).frame == Rig.workers(frame, hop))

        // The underlay's veth peer stops NAPI: the entry goes before the call returns, the DEVMAP
        // slot is empty, and a miss (or a refresh with the same next hop) installs nothing.
        rig.installer.setRedirectCapability(4, ifindex: Self.lo, .incapable(RedirectCapability.vethPeerWithoutNAPI))
        #expect(rig.installer.entryCount == 0)
        #expect(try rig.run(frame).action != XDPTestRun.redirect)
        rig.miss(frame)
        rig.publish([hop])
        rig.miss(frame)
        #expect(rig.installer.entryCount == 0, "no template redirects into a device without NDO_XMIT")
        #expect(rig.installer.snapshot().isEmpty)

        // GRO on on the peer: the port infos are recomputed (the template is back) and the
        // waiting flow is installed without a new miss (the workers' exact-match cache holds it).
        rig.installer.setRedirectCapability(4, ifindex: Self.lo, .capable)
        #expect(rig.installer.entryCount == 1)
        #expect(try rig.run(frame).frame == Rig.workers(frame, hop))
    }

    @Test func anEgressIncapableWhenAddedGivesNoDirectEgressUntilItIsCapable() throws {
        let rig = try Rig()
        rig.installer.setDevicePort(4, ifindex: Self.lo, capability: .incapable(RedirectCapability.noNDOXmit))
        let frame = Build.ipv4UDP()
        let hop = XDPFlowCacheLISPEgressTests.hop()
        rig.publish([hop])
        rig.miss(frame)
        #expect(rig.installer.entryCount == 0)
        #expect(rig.installer.statistics.notCacheable == 1)
        rig.installer.setRedirectCapability(4, ifindex: Self.lo, .capable)
        #expect(rig.installer.entryCount == 1, "the refused miss waited for the egress")
        #expect(try rig.run(frame).frame == Rig.workers(frame, hop))
    }

    /// A device port losing the capability: its entries' flows wait too (before, only misses
    /// refused while it was incapable waited, and the removed entries' flows stayed on the workers).
    @Test func entriesRemovedForADeviceWaitForItToComeBack() throws {
        let rig = try XDPFlowCacheInstallerTests.Rig()
        rig.installer.setDevicePort(2, ifindex: Self.lo, capability: .capable)
        let frame = Build.ipv4UDP()
        try rig.publish(["priority=10,in_port=1,ip,actions=output:2"], miss: frame)
        #expect(rig.installer.entryCount == 1)
        rig.installer.setRedirectCapability(2, ifindex: Self.lo, .incapable(RedirectCapability.vethPeerWithoutNAPI))
        #expect(rig.installer.entryCount == 0)
        rig.installer.setRedirectCapability(2, ifindex: Self.lo, .capable)
        #expect(rig.installer.entryCount == 1, "back without a new miss")
        #expect(try rig.run(frame).action == XDPTestRun.redirect)
    }
}
