// vswiftctl's LISP arguments: `ADDRESS[,priority=P][,weight=W]`.

/// Reads vswiftctl's RLOC argument, `ADDRESS[,priority=P][,weight=W]`. The address is checked by
/// vswiftd; the numbers here only for form (vswiftd checks their range too).
public func parseRLOCArgument(_ text: String) throws(PortArgumentError) -> RLOCParams {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    guard let address = parts.first, !address.isEmpty else {
        throw PortArgumentError("\"\(text)\" is not of the form ADDRESS[,priority=P][,weight=W]")
    }
    var rloc = RLOCParams(address: String(address))
    for part in parts.dropFirst() {
        guard let equals = part.firstIndex(of: "=") else {
            throw PortArgumentError("\"\(part)\" in \"\(text)\" is not priority=P or weight=W")
        }
        let key = part[..<equals]
        let valueText = part[part.index(after: equals)...]
        guard let value = Int(valueText), (0...255).contains(value), valueText.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw PortArgumentError("\(key) in \"\(text)\" must be a number from 0 to 255")
        }
        switch key {
        case "priority":
            guard rloc.priority == nil else { throw PortArgumentError("priority is given twice in \"\(text)\"") }
            rloc.priority = value
        case "weight":
            guard rloc.weight == nil else { throw PortArgumentError("weight is given twice in \"\(text)\"") }
            rloc.weight = value
        default:
            throw PortArgumentError("unknown setting \"\(key)\" in \"\(text)\" (expected priority=P or weight=W)")
        }
    }
    return rloc
}
