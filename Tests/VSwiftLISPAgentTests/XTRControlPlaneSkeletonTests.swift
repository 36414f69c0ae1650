import Testing
import VSwiftLISPAgent

@Suite struct XTRControlPlaneSkeletonTests {
    @Test func anEmptyControlPlaneHasNothingToDo() {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        let result1 = plane.tick(now: 1)
        #expect(result1.isEmpty)
        #expect(plane.nextDeadline == .infinity)
        let result2 = plane.takeSnapshotIfChanged()
        #expect(result2 == nil)
        let report = plane.report(now: 1)
        #expect(report.registrations.isEmpty)
        #expect(report.mapCache.isEmpty)
        // Every counter is there from the start, at zero (stable metric series).
        #expect(report.sent.count + report.received.count + report.refused.count == ControlCounter.allCases.count)
        #expect((Array(report.sent.values) + Array(report.received.values) + Array(report.refused.values)).allSatisfy { $0 == 0 })
    }

    @Test func counterNamesAreUniqueWithinTheirKind() {
        for kind in [ControlCounter.Kind.sent, .received, .refused] {
            let names = ControlCounter.allCases.filter { $0.kind == kind }.map(\.name)
            #expect(Set(names).count == names.count)
        }
    }
}
