import Foundation
import Glibc
import VSwiftProtocol

/// The flow changes made since the configuration file was last written: one JSON-RPC request per
/// line (`{"method":…,"params":…}`), appended and fsync'ed before the change is acknowledged, so a
/// small change to a big table costs one short write instead of rewriting the whole file.
///
/// The first line names the generation of the configuration file the journal continues
/// (`{"generation":N}`). A new configuration file carries a new generation, so a journal left
/// behind by a crash between writing the file and removing the journal no longer matches and is
/// ignored (its changes are in the file). A last line without its newline is a record whose append
/// was cut short by a crash: its request was never acknowledged, and it is ignored.
public struct ConfigJournal: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// One change as a request that replays it.
    public struct Record: Equatable, Sendable {
        public var method: String
        public var params: JSONValue

        public init(method: String, params: JSONValue) {
            self.method = method
            self.params = params
        }

        /// The record's line, newline included.
        public var line: [UInt8] {
            var out = JSONValue.object(["method": .string(method), "params": params]).jsonText()
            out.append(UInt8(ascii: "\n"))
            return out
        }
    }

    /// The records that continue configuration file generation `generation`, in order; empty when
    /// there is no journal or it belongs to another generation. A line in the middle that is not
    /// a record is an error: the file was damaged, and dropping it would lose changes silently.
    public func load(generation: UInt64) throws(ConfigStoreError) -> [Record] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
            return []
        } catch {
            throw ConfigStoreError(path: path, problem: "cannot read: \(error.localizedDescription)")
        }
        let bytes = [UInt8](data)
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        // The piece after the last newline: empty, or a record cut short by a crash.
        lines.removeLast()
        guard let header = lines.first else { return [] }
        guard case .object(let members) = JSONValue.parse(header) ?? .null,
            case let headerGeneration?? = members["generation"].map({ value -> UInt64? in
                switch value {
                case .int(let n) where n >= 0: UInt64(n)
                case .uint(let n): n
                default: nil
                }
            })
        else {
            throw ConfigStoreError(path: path, problem: "line 1 is not a journal header")
        }
        guard headerGeneration == generation else { return [] }
        var records: [Record] = []
        for (number, line) in lines.enumerated().dropFirst() {
            guard case .object(let members) = JSONValue.parse(line) ?? .null, case .string(let method)? = members["method"],
                let params = members["params"]
            else {
                throw ConfigStoreError(path: path, problem: "line \(number + 1) is not a journal record")
            }
            records.append(Record(method: method, params: params))
        }
        return records
    }

    /// Appends `record` and makes it durable; starts the journal (for `generation`) when there is
    /// none. Returns the bytes written. On failure the journal is cut back to where it was.
    @discardableResult
    public func append(_ record: Record, generation: UInt64) throws(ConfigStoreError) -> Int {
        try append(line: record.line, generation: generation)
    }

    /// `append(_:generation:)` with the record's line already made (`Record.line`).
    @discardableResult
    public func append(line: [UInt8], generation: UInt64) throws(ConfigStoreError) -> Int {
        // Never through a symlink, and only into a file of vswiftd's own with no other name: a
        // name planted in the directory must not make root append to another file.
        let fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure("cannot open") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw failure("cannot inspect") }
        do throws(SafePathError) {
            try SafeDirectory.check(status, path: path, type: S_IFREG)
        } catch {
            throw ConfigStoreError(path: path, problem: error.problem)
        }
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else { throw failure("cannot seek") }
        var bytes: [UInt8] = []
        if end == 0 {
            bytes = JSONValue.object(["generation": .uint(generation)]).jsonText()
            bytes.append(UInt8(ascii: "\n"))
        }
        bytes += line
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                let error = failure("cannot write")
                _ = ftruncate(fd, end)
                throw error
            }
            written += count
        }
        guard fdatasync(fd) == 0 else {
            let error = failure("cannot fsync")
            _ = ftruncate(fd, end)
            throw error
        }
        // A new journal's name must be durable too.
        if end == 0 { try ConfigStore.syncDirectory(of: path) }
        return bytes.count
    }

    /// Cuts the journal back to `size` bytes (what it held before an append whose change was then
    /// not made), deleting it when that is 0. Never through a symlink.
    public func cut(to size: Int) throws(ConfigStoreError) {
        guard size > 0 else {
            guard unlink(path) == 0 || errno == ENOENT else { throw failure("cannot remove") }
            return
        }
        let fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot open") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw failure("cannot truncate") }
        guard fdatasync(fd) == 0 else { throw failure("cannot fsync") }
    }

    /// Deletes the journal (after a configuration file that contains its changes was written).
    public func remove() {
        unlink(path)
    }

    private func failure(_ what: String) -> ConfigStoreError {
        ConfigStoreError(path: path, problem: "\(what): \(String(cString: strerror(errno)))")
    }
}
