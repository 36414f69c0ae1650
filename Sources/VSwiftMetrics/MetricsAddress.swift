/// `vswiftd --metrics`'s argument: `HOST:PORT`, an IPv6 address in brackets (`[::1]:9477`), as
/// URLs write them. HOST is an address or a name the resolver knows (`localhost`).
public struct MetricsAddress: Sendable, Equatable {
    public let host: String
    public let port: Int

    public enum Problem: Error, Sendable, Equatable, CustomStringConvertible {
        case noPort(String)
        case badPort(String)
        case noHost(String)
        case unbracketedIPv6(String)

        public var description: String {
            switch self {
            case .noPort(let text): return "\"\(text)\" has no :PORT (e.g. 127.0.0.1:9477)"
            case .badPort(let text): return "\"\(text)\": the port must be a number from 1 to 65535"
            case .noHost(let text): return "\"\(text)\" has no address before the port (e.g. 0.0.0.0:9477 for all)"
            case .unbracketedIPv6(let text): return "\"\(text)\": write an IPv6 address in brackets, e.g. [::1]:9477"
            }
        }
    }

    public init(_ text: String) throws(Problem) {
        guard let colon = text.lastIndex(of: ":") else { throw .noPort(text) }
        var host = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        guard let port = Int(portText), (1...65535).contains(port) else { throw .badPort(text) }
        if host.hasPrefix("[") && host.hasSuffix("]") && host.count > 2 {
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") || host.contains("[") || host.contains("]") {
            throw .unbracketedIPv6(text)
        }
        guard !host.isEmpty else { throw .noHost(text) }
        self.host = host
        self.port = port
    }
}
