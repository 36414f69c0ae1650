import Testing
import VSwiftLISPAgent

@Suite struct XTRControlPlaneSkeletonTests {
    @Test func anEmptyControlPlaneHasNothingToDo() {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        #expect(plane.tick(now: 1).isEmpty)
        #expect(plane.report(now: 1) == XTRControlReport())
    }
}
