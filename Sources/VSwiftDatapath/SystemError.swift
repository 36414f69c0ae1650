import Glibc

/// A failed system or library call: which operation, on what, and errno.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    public let operation: String
    public let errno: Int32

    public init(_ operation: String, errno: Int32 = Glibc.errno) {
        self.operation = operation
        self.errno = errno
    }

    /// For libbpf-style returns: negative errno.
    init(_ operation: String, negativeErrno: Int32) {
        self.init(operation, errno: -negativeErrno)
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(errno)))"
    }
}

/// Errors a user can cause through the control plane; each names the object at fault.
public enum DatapathError: Error, CustomStringConvertible, Sendable, Equatable {
    case noSuchBridge(String)
    case bridgeExists(String)
    case noSuchPort(String)
    case portExists(String)
    case noSuchDevice(String)
    case deviceInUse(String, reason: String)
    case unsupported(String)
    case tooManyPorts(Int)
    case system(SystemError)

    public var description: String {
        switch self {
        case .noSuchBridge(let name): return "no bridge named \"\(name)\""
        case .bridgeExists(let name): return "a bridge or device named \"\(name)\" already exists"
        case .noSuchPort(let name): return "no port named \"\(name)\""
        case .portExists(let name): return "\"\(name)\" is already a port"
        case .noSuchDevice(let name): return "no network device named \"\(name)\""
        case .deviceInUse(let name, let reason): return "cannot attach \"\(name)\": \(reason)"
        case .unsupported(let what): return what
        case .tooManyPorts(let max): return "the datapath supports at most \(max) ports"
        case .system(let error): return error.description
        }
    }
}
