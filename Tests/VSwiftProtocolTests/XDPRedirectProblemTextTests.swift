import Testing
import VSwiftProtocol

/// A port the XDP cache cannot redirect to says so on dump-ports' xdp_cache line and under
/// dump-xdp-cache's header; a port without a problem prints as before.
@Suite struct XDPRedirectProblemTextTests {
    static let problem = "veth peer without NAPI: enable GRO or XDP on the peer"

    @Test func theDumpPortsLineSaysWhyThePortIsNoTarget() {
        #expect(formatXDPPathLine(XDPPathReport(misses: 3)) == "xdp_cache hit=0, miss=3, punt=0, fail=0\n")
        #expect(formatXDPPathLine(XDPPathReport(misses: 3, redirectProblem: Self.problem))
                == "xdp_cache hit=0, miss=3, punt=0, fail=0, not a redirect target: \(Self.problem)\n")
    }

    @Test func dumpXDPCacheListsThePortsThatAreNoTargets() {
        let report = XDPCacheReport(enabled: true, ports: [
            XDPCachePortEntry(bridge: "br0", name: "v0", path: XDPPathReport()),
            XDPCachePortEntry(bridge: "br0", name: "v1", path: XDPPathReport(redirectProblem: Self.problem)),
        ])
        let text = formatDumpXDPCache(report)
        #expect(text.contains("\nport v1: not a redirect target: \(Self.problem)\n"), "\(text)")
        #expect(!text.contains("port v0"))
    }

    @Test func theProblemRoundTripsThroughJSONAndIsOptional() throws {
        let path = XDPPathReport(hits: 1, redirectProblem: Self.problem)
        #expect(try JSONValue(encoding: path).decode(XDPPathReport.self) == path)
        let old = #"{"hits":1,"misses":2,"punted":0,"failed":0}"#
        #expect(try JSONValue.parse(Array(old.utf8))?.decode(XDPPathReport.self) == XDPPathReport(hits: 1, misses: 2))
    }
}
