import VSwiftClassifier
import VSwiftFlowSyntax
import VSwiftPacket

/// libFuzzer target: the ovs-ofctl flow syntax parser (`FlowParser.parseFlow`, what add-flow and
/// the saved configuration use) and the formatter. The input is one flow line (UTF-8; invalid
/// bytes are repaired as Swift's String does). Property: whatever parses, formats to text that
/// parses to the same rule, and formatting that rule gives the same text again (a fixed point).
/// Also exercised: the del-flows/mod-flows match parser and the actions parser alone.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    // Port names as a bridge would resolve them: a few known names, the rest unknown.
    let parser = FlowParser(portNumber: { name in
        switch name {
        case "p1": 1
        case "vm2": 2
        case "lisp0": 10
        default: nil
        }
    })
    _ = try? parser.parseModification(text)
    _ = try? parser.parseActions(text)
    guard let rule = try? parser.parseFlow(text) else { return 0 }
    let formatted = FlowFormatter.flow(rule)
    let reparsed: FlowRule
    do {
        reparsed = try parser.parseFlow(formatted)
    } catch {
        preconditionFailure("formatted flow does not parse: \(formatted) (\(error)), from: \(text)")
    }
    precondition(reparsed == rule, "round trip changed the rule: \(text) -> \(formatted) -> \(FlowFormatter.flow(reparsed))")
    precondition(FlowFormatter.flow(reparsed) == formatted, "formatting is not a fixed point: \(formatted)")
    return 0
}
