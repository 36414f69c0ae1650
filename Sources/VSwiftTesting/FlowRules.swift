import VSwiftDatapath
import VSwiftFlowSyntax

extension PipelineHarness {
    /// The datapath rules of flow texts (ovs-ofctl syntax), in order, rule i counted in slot i: the
    /// tables the pipeline tests and `vswift-bench pipeline` install.
    public static func rules(_ texts: [String]) throws(FlowSyntaxError) -> [DatapathRule] {
        let parser = FlowParser()
        var out: [DatapathRule] = []
        for (i, text) in texts.enumerated() {
            let rule = try parser.parseFlow(text)
            out.append(DatapathRule(match: rule.match, priority: rule.priority, sequence: UInt64(i), actions: rule.actions, counterSlot: i))
        }
        return out
    }
}
