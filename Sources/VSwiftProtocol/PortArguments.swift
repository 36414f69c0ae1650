/// Reads the interface settings that follow `add-port BR IF`, in either of ovs-vsctl's spellings:
///
///     add-port br2 lisp0 type=lisp options:remote_ip=192.168.1.252
///     add-port br2 lisp0 -- set Interface lisp0 type=lisp options:remote_ip=192.168.1.252
///
/// Settings are `type=TYPE` and `options:KEY=VALUE` (the value may be double-quoted). After `--`
/// only `set Interface IF`, naming the interface being added, is accepted.
public func parsePortArguments(
    interface: String, _ arguments: [String]
) throws(PortArgumentError) -> (type: String?, options: [String: String]) {
    var type: String?
    var options: [String: String] = [:]
    var remaining = arguments[...]
    while let argument = remaining.popFirst() {
        if argument == "--" {
            let command = Array(remaining.prefix(3))
            guard command.count == 3, command[0] == "set", command[1].lowercased() == "interface" else {
                let given = command.isEmpty ? "" : ", not \"\(command.joined(separator: " "))\""
                throw PortArgumentError("after \"--\" only \"set Interface \(interface) SETTINGS...\" is supported\(given)")
            }
            guard command[2] == interface else {
                throw PortArgumentError(
                    "\"-- set Interface \(command[2])\" names another interface than the one being added, \"\(interface)\"")
            }
            remaining = remaining.dropFirst(3)
        } else if let value = argument.dropPrefix("type=") {
            guard type == nil else { throw PortArgumentError("type is given twice") }
            type = value
        } else if let setting = argument.dropPrefix("options:") {
            guard let equals = setting.firstIndex(of: "="), equals != setting.startIndex else {
                throw PortArgumentError("\"\(argument)\" is not of the form options:KEY=VALUE")
            }
            let key = String(setting[..<equals])
            guard options[key] == nil else { throw PortArgumentError("options:\(key) is given twice") }
            options[key] = unquoted(setting[setting.index(after: equals)...])
        } else {
            throw PortArgumentError(
                "unrecognized argument \"\(argument)\" (expected type=TYPE or options:KEY=VALUE)")
        }
    }
    return (type, options)
}

public struct PortArgumentError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// ovs-vsctl accepts `options:remote_ip="1.2.3.4"`; the quotes are not part of the value.
private func unquoted(_ value: Substring) -> String {
    if value.count >= 2 && value.first == "\"" && value.last == "\"" {
        return String(value.dropFirst().dropLast())
    }
    return String(value)
}

extension String {
    fileprivate func dropPrefix(_ prefix: String) -> String? {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : nil
    }
}
