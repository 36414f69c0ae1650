import Foundation
import Glibc
import Testing
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// A port's effective cache view is one derivation from what the datapath offered
/// (`effectivePorts(offered)`, DESIGN.md "A port's effective cache view"): a capture, a decap
/// entry and a redirect problem, started and stopped in every order, always leave every mark as
/// that derivation gives it — no change undoes another's mark. The installer and the real maps.
///
/// The bridge: device port 1 (slot 1) and LISP port 2 (slot 9) whose encapsulated frames leave
/// by underlay device slot 4. The three changes all mark the LISP port: a capture on slot 4 (its
/// egress: the capture must see the outer frames), a decap entry for it (heard on underlay slot
/// 6, another device, so the capture on 4 does not take it away) and slot 4 losing NDO_XMIT
/// (no direct egress).
@Suite(.serialized) struct XDPFlowCacheEffectivePortsTests {
    static let lo = UInt32(if_nametoindex("lo"))
    static let options = LISPPortOptions(remote: .address(XDPFlowCacheLISPEgressTests.remote4), key: .id(0x77))

    enum Change: CaseIterable {
        case capture, decap, redirectProblem
    }

    final class Rig {
        let installer: XDPFlowCacheInstaller
        let offered: [UInt32: XDPCachePortInfo]

        init() throws {
            let cache = try XDPFlowCache(capacity: 64, portSlots: 16)
            try cache.setEnabled(true)
            installer = XDPFlowCacheInstaller(cache: cache, rings: [FlowCacheKeyRing()])
            installer.setDevicePort(1, ifindex: XDPFlowCacheEffectivePortsTests.lo, capability: .capable)
            installer.setDevicePort(4, ifindex: XDPFlowCacheEffectivePortsTests.lo, capability: .capable)
            let slots: [OpenFlowPortNumber: PortSlot] = [1: 1, 2: 9]
            let table = try CompiledFlowTable(rules: try PipelineHarness.rules(["priority=10,in_port=1,ip,actions=output:2"]),
                                              portSlot: { slots[$0] })
            offered = [
                1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 1),
                2: XDPFlowCacheLISPEgress.portInfo(slot: 9, options: XDPFlowCacheEffectivePortsTests.options,
                                                   nextHops: [XDPFlowCacheLISPEgressTests.hop()], redirectTargets: [1, 4]),
            ]
            installer.refresh(bridge: 0, table: table, ports: offered, ofport: [1: 1, 9: 2])
        }

        func set(_ change: Change, _ on: Bool) {
            switch change {
            case .capture:
                installer.setCapturing(4, on)
            case .decap:
                installer.setDecapPorts(on ? [XDPDecapPort(
                    port: .init(inPort: XDPFlowCacheTranslation.inPortID(9), remote: XDPFlowCacheLISPEgressTests.remote4,
                                key: 0x77, egress: (XDPFlowCacheLISPEgressTests.local4, 66)),
                    slot: 9, underlay: 6)] : [])
            case .redirectProblem:
                installer.setRedirectCapability(4, ifindex: XDPFlowCacheEffectivePortsTests.lo,
                                                on ? .incapable(RedirectCapability.vethPeerWithoutNAPI) : .capable)
            }
        }

        /// What the installer holds for the bridge's ports now.
        var ports: [UInt32: XDPCachePortInfo]? {
            installer.lock.lock()
            defer { installer.lock.unlock() }
            return installer.bridges[0]?.ports
        }

        /// The ports as they must be with `active` changes on, written out by hand.
        func expected(_ active: Set<Change>) -> [UInt32: XDPCachePortInfo] {
            var ports = offered
            var lisp = ports[2]!
            lisp.cache.capturing = active.contains(.capture)
            guard case .lisp(var kind) = lisp.cache.kind else { preconditionFailure("port 2 is the LISP port") }
            kind.decapInXDP = active.contains(.decap)
            if active.contains(.redirectProblem) {
                kind.directEgress = false
                lisp.lisp = nil
            }
            lisp.cache.kind = .lisp(kind)
            ports[2] = lisp
            return ports
        }
    }

    static func orders() -> [[Change]] {
        let all = Change.allCases
        var result: [[Change]] = []
        for a in all {
            for b in all where b != a {
                for c in all where c != a && c != b { result.append([a, b, c]) }
            }
        }
        return result
    }

    @Test func theOfferedLISPPortHasDirectEgressAndNoMark() throws {
        let rig = try Rig()
        guard case .lisp(let kind) = rig.offered[2]?.cache.kind else {
            Issue.record("port 2 is not a LISP port")
            return
        }
        #expect(kind.directEgress && !kind.decapInXDP && rig.offered[2]?.lisp?.egress == 4)
        #expect(rig.ports == rig.offered)
    }

    @Test(arguments: orders()) func everyOrderOnThenEveryOrderOffLeavesEveryMarkRight(_ on: [Change]) throws {
        for off in Self.orders() {
            let rig = try Rig()
            var active: Set<Change> = []
            for change in on {
                rig.set(change, true)
                active.insert(change)
                #expect(rig.ports == rig.expected(active), "on \(on), after \(change) on")
            }
            #expect(rig.installer.decapEntrySnapshot.count == 1, "the capture on the egress leaves the decap entry (heard on slot 6)")
            for change in off {
                rig.set(change, false)
                active.remove(change)
                #expect(rig.ports == rig.expected(active), "on \(on), off \(off), after \(change) off")
            }
            #expect(rig.ports == rig.offered)
        }
    }

    /// The order the old partial re-marking got wrong: the egress loses NDO_XMIT first (the stored
    /// port loses its `lisp` egress), then a capture starts on it — the capture found no port
    /// whose stored egress it was, and the LISP port stayed unmarked.
    @Test func aCaptureOnAnEgressThatAlreadyLostNDOXmitStillMarksItsLISPPort() throws {
        let rig = try Rig()
        rig.set(.redirectProblem, true)
        rig.set(.capture, true)
        #expect(rig.ports?[2]?.cache.capturing == true)
        #expect(rig.ports == rig.expected([.redirectProblem, .capture]))
    }
}
