import Glibc
import Testing
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// Redirect targets (DESIGN.md, "Megaflows and revalidation", *Redirect targets*): a device the
/// kernel cannot XDP_REDIRECT to (no NETDEV_XDP_ACT_NDO_XMIT: a veth whose peer runs no NAPI) is
/// the output of no entry, and its DEVMAP slot is empty; the program punts a hit whose slot is
/// empty to the workers untouched. The installer and the real redirect program (BPF_PROG_RUN).
@Suite(.serialized) struct XDPRedirectTargetTests {
    typealias Rig = XDPFlowCacheInstallerTests.Rig
    static let lo = UInt32(if_nametoindex("lo"))

    @Test func aPortLosingTheCapabilityLosesItsEntriesFirstAndGetsThemBackWhenItReturns() throws {
        let rig = try Rig()
        rig.installer.setDevicePort(1, ifindex: Self.lo, capability: .capable)
        rig.installer.setDevicePort(2, ifindex: Self.lo, capability: .capable)
        let frame = Build.ipv4UDP()
        let table = try rig.publish(["priority=10,in_port=1,ip,actions=output:2"], miss: frame)
        #expect(rig.installer.entryCount == 1)
        #expect(try rig.run(frame).action == XDPTestRun.redirect)

        // Port 2's veth peer stops NAPI: the entry goes, the slot is cleared, frames go to the workers.
        rig.installer.setRedirectCapability(2, ifindex: Self.lo, .incapable(RedirectCapability.vethPeerWithoutNAPI))
        #expect(rig.installer.entryCount == 0)
        #expect(rig.installer.statistics.removed == 1)
        #expect(rig.installer.redirectProblem(2) == RedirectCapability.vethPeerWithoutNAPI)
        #expect(try rig.run(frame).action != XDPTestRun.redirect)
        // A miss is refused with its reason, also after the table is published again.
        rig.miss(frame, version: table.classifier.version)
        rig.publish(table)
        rig.miss(frame, version: table.classifier.version)
        #expect(rig.installer.entryCount == 0)
        #expect(rig.installer.statistics.redirectUnsupported == 2)
        // Unchanged news changes nothing; another device's ifindex is not this port.
        rig.installer.setRedirectCapability(2, ifindex: Self.lo + 1000, .capable)
        #expect(rig.installer.redirectProblem(2) != nil)

        // GRO on on the peer: the slot is set again and the refused misses are installed (the
        // workers' exact-match cache would not hand those flows over again).
        rig.installer.setRedirectCapability(2, ifindex: Self.lo, .capable)
        #expect(rig.installer.redirectProblem(2) == nil)
        #expect(rig.installer.entryCount == 1)
        #expect(try rig.run(frame).action == XDPTestRun.redirect)
        rig.miss(frame, version: table.classifier.version)
        #expect(rig.installer.entryCount == 1)
    }

    @Test func aPortIncapableWhenAddedNeverGetsItsSlot() throws {
        let rig = try Rig()
        rig.installer.setDevicePort(2, ifindex: Self.lo, capability: .incapable(RedirectCapability.noNDOXmit))
        let frame = Build.ipv4UDP()
        try rig.publish(["priority=10,in_port=1,ip,actions=output:2"], miss: frame)
        #expect(rig.installer.entryCount == 0)
        #expect(rig.installer.statistics.redirectUnsupported == 1)
        #expect(try rig.run(frame).action != XDPTestRun.redirect, "the Rig's own setPort was cleared")
        rig.installer.clearDevicePort(2)
        #expect(rig.installer.redirectProblem(2) == nil)
    }

    /// The race the program must survive: an entry still in the maps whose DEVMAP slot is already
    /// empty. bpf_redirect_map's fallback (XDP_PASS, a sentinel) makes it a punt before any
    /// action ran, so the frame reaches the workers exactly as it arrived.
    @Test func aHitOnAnEmptySlotIsPuntedUntouched() throws {
        let rig = try Rig()
        let frame = Build.ipv4UDP()
        try rig.publish(["priority=10,in_port=1,ip,actions=mod_dl_dst:02:00:00:00:00:99,dec_ttl,mod_tp_dst:99,output:2"], miss: frame)
        #expect(rig.installer.entryCount == 1)
        let hit = try rig.run(frame)
        #expect(hit.action == XDPTestRun.redirect && hit.frame != frame)
        rig.cache.clearPort(slot: 2)
        let punted = try rig.run(frame)
        #expect(punted.action != XDPTestRun.redirect)
        #expect(punted.frame == frame, "a punted frame is untouched")
        let s = rig.program.statistics()
        #expect(s.hits == 1 && s.punted == 1 && s.failed == 0)
    }
}
