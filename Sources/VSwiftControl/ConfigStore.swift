import Foundation
import Glibc

/// vswiftd's saved configuration: what a restart must bring back.
///
/// Flows are kept in ovs-ofctl syntax (`FlowFormatter.flow`), cookie and timeouts included, so the
/// file can be read (and, with the daemon stopped, edited) by a person. Counters, durations and the
/// time a flow was installed are not kept: after a restart they start again, hard timeouts too.
public struct SwitchConfig: Codable, Sendable, Equatable {
    /// Format version of the file.
    public var version: Int
    public var systemID: String
    /// In creation order.
    public var bridges: [BridgeConfig]

    public static let currentVersion = 1

    public init(systemID: String, bridges: [BridgeConfig] = []) {
        self.version = Self.currentVersion
        self.systemID = systemID
        self.bridges = bridges
    }
}

public struct BridgeConfig: Codable, Sendable, Equatable {
    public var name: String
    /// The number the next added port gets (numbers are never reused while the bridge exists).
    public var nextOfport: UInt32
    /// In port-number order, without the internal port (which every bridge has).
    public var ports: [PortConfig]
    /// In dump-flows order (priority descending, then installation order).
    public var flows: [String]

    public init(name: String, nextOfport: UInt32, ports: [PortConfig], flows: [String]) {
        self.name = name
        self.nextOfport = nextOfport
        self.ports = ports
        self.flows = flows
    }
}

public struct PortConfig: Codable, Sendable, Equatable {
    public var name: String
    public var ofport: UInt32
    /// OVS interface type; "" for a system device.
    public var type: String
    public var options: [String: String]

    public init(name: String, ofport: UInt32, type: String = "", options: [String: String] = [:]) {
        self.name = name
        self.ofport = ofport
        self.type = type
        self.options = options
    }
}

public struct ConfigStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var problem: String

    public var description: String { "\(path): \(problem)" }
}

/// The configuration file, written atomically: the new contents go to `PATH.tmp`, which is
/// fsync'ed and renamed over `PATH`, then the directory is fsync'ed. A crash at any moment leaves
/// either the old file or the new one, never a mix; a `PATH.tmp` left behind by a crash is ignored.
public struct ConfigStore: Sendable {
    public let path: String

    public static let defaultPath = "/var/lib/vswift/vswiftd.db.json"

    public init(path: String) {
        self.path = path
    }

    /// `$VSWIFT_DB` when set and not empty, else `defaultPath`.
    public static func defaultPath(environment: [String: String]) -> String {
        if let path = environment["VSWIFT_DB"], !path.isEmpty { return path }
        return defaultPath
    }

    var temporaryPath: String { path + ".tmp" }

    /// The saved configuration; nil when there is no file yet (a first start). A file that cannot
    /// be read or understood is an error, never an empty configuration.
    public func load() throws(ConfigStoreError) -> SwitchConfig? {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
            return nil
        } catch {
            throw ConfigStoreError(path: path, problem: "cannot read: \(Self.describe(error))")
        }
        let config: SwitchConfig
        do {
            config = try JSONDecoder().decode(SwitchConfig.self, from: data)
        } catch let error as DecodingError {
            throw ConfigStoreError(path: path, problem: "not a vswiftd configuration: \(error.fieldMessage)")
        } catch {
            throw ConfigStoreError(path: path, problem: "not a vswiftd configuration: \(error)")
        }
        guard config.version == SwitchConfig.currentVersion else {
            throw ConfigStoreError(
                path: path, problem: "format version \(config.version) is not supported (this vswiftd reads version \(SwitchConfig.currentVersion))")
        }
        return config
    }

    /// Replaces the file with `config`, atomically (see the type's description). Creates the
    /// directory (mode 0755) when missing; the file itself is mode 0600.
    public func save(_ config: SwitchConfig) throws(ConfigStoreError) {
        try write(Self.encode(config))
    }

    /// Pretty JSON with sorted keys, one flow per line.
    static func encode(_ config: SwitchConfig) -> [UInt8] {
        let bridges = config.bridges.map { bridge -> JSONValue in
            .object([
                "name": .string(bridge.name),
                "nextOfport": .int(Int64(bridge.nextOfport)),
                "ports": .array(bridge.ports.map { port in
                    .object([
                        "name": .string(port.name), "ofport": .int(Int64(port.ofport)), "type": .string(port.type),
                        "options": .object(port.options.mapValues(JSONValue.string)),
                    ])
                }),
                "flows": .array(bridge.flows.map(JSONValue.string)),
            ])
        }
        let value: JSONValue = .object([
            "version": .int(Int64(config.version)), "systemID": .string(config.systemID), "bridges": .array(bridges),
        ])
        return value.jsonText(pretty: true) + [UInt8(ascii: "\n")]
    }

    func write(_ bytes: [UInt8]) throws(ConfigStoreError) {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty && !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            } catch {
                throw ConfigStoreError(path: path, problem: "cannot create directory \(directory): \(Self.describe(error))")
            }
        }
        let temporary = temporaryPath
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure("cannot create \(temporary)") }
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                let error = failure("cannot write \(temporary)")
                close(fd)
                unlink(temporary)
                throw error
            }
            written += count
        }
        guard fsync(fd) == 0 else {
            let error = failure("cannot fsync \(temporary)")
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let error = failure("cannot rename \(temporary) to \(path)")
            unlink(temporary)
            throw error
        }
        // The rename is durable only once the directory is.
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directoryFD >= 0 else { throw failure("cannot open directory \(directory)") }
        defer { close(directoryFD) }
        guard fsync(directoryFD) == 0 else { throw failure("cannot fsync directory \(directory)") }
    }

    private func failure(_ what: String) -> ConfigStoreError {
        ConfigStoreError(path: path, problem: "\(what): \(String(cString: strerror(errno)))")
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? CocoaError, let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError,
            underlying.domain == NSPOSIXErrorDomain
        {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return error.localizedDescription
    }
}
