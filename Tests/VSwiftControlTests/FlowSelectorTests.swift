import Testing
import VSwiftFlowSyntax
import VSwiftPacket
import VSwiftClassifier
import VSwiftDatapath
@testable import VSwiftControl

/// Which flows a del-flows, mod-flows or dump-flows selector picks (`FlowSelector`).
@Suite struct FlowSelectorTests {
    @Test func selectorConditionsOnCookieAndOutPort() throws {
        let actions = try FlowParser().parseActions("mod_nw_ecn:1,output:3,NORMAL")
        #expect(FlowSelector(outPort: 3).selects(cookie: 0xab, actions: actions))
        #expect(FlowSelector(outPort: OpenFlowPort.normal).selects(cookie: 0xab, actions: actions))
        #expect(!FlowSelector(outPort: 4).selects(cookie: 0xab, actions: actions))
        #expect(!FlowSelector(outPort: OpenFlowPort.flood).selects(cookie: 0xab, actions: actions))
        #expect(!FlowSelector(outPort: 3).selects(cookie: 0xab, actions: []))  // drop outputs nowhere
        #expect(FlowSelector(cookie: (0xa0, 0xf0), outPort: 3).selects(cookie: 0xab, actions: actions))
        #expect(!FlowSelector(cookie: (0xb0, 0xf0), outPort: 3).selects(cookie: 0xab, actions: actions))
        #expect(FlowSelector(cookie: (0xb0, 0)).selects(cookie: 0xab, actions: actions))  // mask 0: any cookie
        #expect(FlowSelector.all.selects(cookie: 0, actions: []))
    }

    @Test func selectorSubsetSemantics() throws {
        let parser = FlowParser()
        func match(_ text: String) throws -> Match { try parser.parseMatch(text).match }
        #expect(try FlowSelector.isAtLeastAsSpecific(match("ip,nw_src=10.1.1.0/24"), as: match("ip,nw_src=10.1.0.0/16")))
        #expect(try !FlowSelector.isAtLeastAsSpecific(match("ip,nw_src=10.0.0.0/8"), as: match("ip,nw_src=10.1.0.0/16")))
        #expect(try !FlowSelector.isAtLeastAsSpecific(match("ip"), as: match("ip,nw_src=10.1.0.0/16")))
        #expect(try FlowSelector.isAtLeastAsSpecific(match("in_port=1,arp"), as: match("")))
        #expect(try FlowSelector.isAtLeastAsSpecific(match("in_port=1,arp"), as: match("in_port=1,arp")))
        #expect(try !FlowSelector.isAtLeastAsSpecific(match("in_port=1,arp"), as: match("in_port=2")))
        #expect(try FlowSelector.isAtLeastAsSpecific(match("dl_dst=02:00:00:00:00:00"), as: match("dl_dst=02:00:00:00:00:00/01:00:00:00:00:00")))
    }
}
