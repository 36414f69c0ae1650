import Foundation
import Glibc
import Logging
import Synchronization
import Testing
import VSwiftTesting
import VSwiftDatapath
import VSwiftProtocol

@testable import VSwiftControl

/// A fake switch: enough methods to exercise the server.
@Sendable private func fakeHandler(_ request: RPCRequest) async -> Result<JSONValue, RPCError> {
    switch request.method {
    case "echo":
        return .success(request.params ?? .null)
    case "slow":
        try? await Task.sleep(for: .milliseconds(300))
        return .success("slow")
    case "add-br":
        do throws(RPCError) {
            let params = try request.decodeParams(BridgeParams.self)
            return params.bridge == "br0" ? .failure(.alreadyExists(#"a bridge named "br0" already exists"#)) : .success(.null)
        } catch {
            return .failure(error)
        }
    case "show":
        let report = ShowReport(
            systemID: "id", bridges: [BridgeDescription(name: "br0", ports: [PortDescription(name: "br0", ofport: ofportLocal, type: "internal")])])
        return Result { () throws(RPCError) in try JSONValue(encoding: report) }
    default:
        return .failure(.methodNotFound(request.method))
    }
}

/// Runs `body` with a server started on a socket in a fresh directory; stops it and cleans up after.
private func withServer<T>(
    socketName: String = "ctl.sock", limits: ControlLimits = ControlLimits(),
    _ body: (_ path: String, _ server: ControlServer) async throws -> T
) async throws -> T {
    let directory = try makeTemporaryDirectory(mode: 0o755)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = "\(directory)/\(socketName)"
    let server = ControlServer(socketPath: path, logger: Logger(label: "test"), maxLineLength: testLineLimit, limits: limits, handler: fakeHandler)
    try server.start()
    defer { server.stop() }
    return try await body(path, server)
}

/// The servers of these tests refuse lines longer than this (vswiftd's own limit is far larger).
private let testLineLimit = 1 << 20

/// Runs blocking socket code on a thread of its own: blocking the few threads that run Swift tasks
/// (as many as cores) would starve the server's handler tasks and the other tests.
private func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// A raw client connection that reads the server's answers line by line.
// Unchecked: each test uses a connection from one task at a time (handed to `blocking` calls one
// after another), never from two threads at once.
private final class Connection: @unchecked Sendable {
    private let socket: UnixSocket
    private var buffer: [UInt8] = []

    init(_ path: String) throws {
        socket = try UnixSocket(connectingTo: path, timeout: .seconds(10))
    }

    func send(_ text: String) throws {
        try socket.send(Array(text.utf8))
    }

    func shutdownWriting() throws {
        try socket.shutdownWriting()
    }

    /// The next line without its "\n"; nil when the server closed the connection.
    func readLine() throws -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            if try socket.receive(appendingTo: &buffer) == 0 { return nil }
        }
    }

    /// The next response, decoded; nil when the server closed the connection.
    func readResponse() throws -> Response? {
        guard let line = try readLine() else { return nil }
        guard case .object(let members)? = JSONValue.parse(Array(line.utf8)) else { throw RPCError.parseError }
        return (members["id"], try RPCCodec.decodeResponse(Array(line.utf8)))
    }
}

private typealias Response = (id: JSONValue?, result: Result<JSONValue, RPCError>)

private func request(_ id: Int, _ method: String, _ params: JSONValue? = nil) -> String {
    String(decoding: RPCCodec.encodeRequest(id: id, method: method, params: params), as: UTF8.self)
}

/// Sends `text` on a new connection and reads `count` responses.
private func exchange(_ path: String, _ text: String, responses count: Int = 1) async throws -> [Response?] {
    try await blocking {
        let connection = try Connection(path)
        try connection.send(text)
        return try (0..<count).map { _ in try connection.readResponse() }
    }
}

@Suite struct ControlServerTests {
    @Test func answersARequest() async throws {
        let responses = try await withServer { path, _ in try await exchange(path, request(1, "echo", ["a": .uint(.max)])) }
        #expect(responses[0]?.id == 1)
        #expect(responses[0]?.result == .success(["a": .uint(.max)]))
    }

    @Test func keepsAnsweringAfterBadInput() async throws {
        let responses = try await withServer { path, _ in
            try await blocking {
                let connection = try Connection(path)
                var responses: [Response?] = []
                for line in [
                    "{not json\n",
                    "\n\r\n" + #"{"jsonrpc":"2.0","id":5,"method":"echo","params":[1]}"# + "\r\n",
                    #"{"jsonrpc":"1.0","id":6,"method":"echo"}"# + "\n",
                    request(7, "add-br", ["bridge": 1]),
                    request(8, "echo", ["still": "here"]),
                ] {
                    try connection.send(line)
                    responses.append(try connection.readResponse())
                }
                return responses
            }
        }
        #expect(responses[0]?.id == .null)
        #expect(responses[0]?.result == .failure(.parseError))
        #expect(responses[1]?.id == 5)
        #expect(responses[1]?.result == .success([1]))
        #expect(responses[2]?.id == 6)
        #expect(responses[2]?.result == .failure(.invalidRequest(#""jsonrpc" must be "2.0""#)))
        #expect(responses[3]?.id == 7)
        #expect(responses[3]?.result == .failure(.invalidParams(#""bridge" must be a string"#)))
        #expect(responses[4]?.id == 8)
        #expect(responses[4]?.result == .success(["still": "here"]))
    }

    @Test func unknownMethod() async throws {
        let responses = try await withServer { path, _ in try await exchange(path, request(3, "add-flow")) }
        #expect(responses[0]?.id == 3)
        #expect(responses[0]?.result == .failure(RPCError(code: -32601, message: #"unknown method "add-flow""#)))
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        // The first takes longest; its answer must still come first. The notification in between
        // runs but gets no answer.
        let text = request(1, "slow") + #"{"jsonrpc":"2.0","method":"echo"}"# + "\n" + request(2, "echo", [2])
        let responses = try await withServer { path, _ in try await exchange(path, text, responses: 2) }
        #expect(responses[0]?.id == 1)
        #expect(responses[0]?.result == .success("slow"))
        #expect(responses[1]?.id == 2)
        #expect(responses[1]?.result == .success([2]))
    }

    @Test func lastLineWithoutNewlineIsAnsweredAfterHalfClose() async throws {
        let (response, end) = try await withServer { path, _ in
            try await blocking {
                let connection = try Connection(path)
                try connection.send(String(request(9, "slow").dropLast()))
                try connection.shutdownWriting()
                return (try connection.readResponse(), try connection.readLine())
            }
        }
        #expect(response?.id == 9)
        #expect(response?.result == .success("slow"))
        #expect(end == nil)
    }

    @Test func lineOfExactlyTheLimitIsAccepted() async throws {
        let empty = request(1, "echo", [""]).dropLast()  // without "\n"
        let padding = String(repeating: "x", count: testLineLimit - empty.utf8.count)
        let line = String(request(1, "echo", [.string(padding)]).dropLast()) + "\r\n"
        let responses = try await withServer { path, _ in try await exchange(path, line) }
        #expect(responses[0]?.result == .success([.string(padding)]))
    }

    @Test func oversizeLineIsRefusedAndClosesTheConnection() async throws {
        let (response, end, next) = try await withServer { path, _ in
            let (response, end) = try await blocking {
                let connection = try Connection(path)
                try connection.send(String(repeating: "x", count: testLineLimit + 1) + "\n")
                return (try connection.readResponse(), try connection.readLine())
            }
            // The server itself goes on.
            return (response, end, try await exchange(path, request(2, "echo"))[0])
        }
        #expect(response?.id == .null)
        #expect(response?.result == .failure(.invalidRequest("line longer than 1048576 bytes")))
        #expect(end == nil)
        #expect(next?.result == .success(.null))
    }

    @Test func socketIsPrivateAndItsDirectoryCreated() async throws {
        let (socketMode, directoryMode) = try await withServer(socketName: "run/vswift/ctl.sock") { path, _ in
            var socketStatus = stat()
            var directoryStatus = stat()
            #expect(stat(path, &socketStatus) == 0)
            #expect(stat(String(path.dropLast("/ctl.sock".count)), &directoryStatus) == 0)
            return (socketStatus.st_mode, directoryStatus.st_mode)
        }
        #expect(socketMode & S_IFMT == S_IFSOCK)
        #expect(socketMode & 0o777 == 0o600)
        #expect(directoryMode & 0o777 == 0o755)
    }

    @Test func stopRemovesTheSocket() async throws {
        let exists = try await withServer { path, server in
            server.stop()
            return FileManager.default.fileExists(atPath: path)
        }
        #expect(!exists)
    }

    @Test func staleSocketIsReplaced() async throws {
        let directory = try makeTemporaryDirectory(mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/ctl.sock"
        try bindAndAbandon(path)
        let server = ControlServer(socketPath: path, logger: Logger(label: "test"), handler: fakeHandler)
        try server.start()
        defer { server.stop() }
        let responses = try await exchange(path, request(1, "echo", [1]))
        #expect(responses[0]?.result == .success([1]))
    }

    @Test func secondServerOnALivePathIsRefused() async throws {
        let responses = try await withServer { path, _ in
            let second = ControlServer(socketPath: path, logger: Logger(label: "test"), handler: fakeHandler)
            #expect(throws: ControlServerError.alreadyRunning(path: path)) { try second.start() }
            // The first one keeps its socket and answers.
            return try await exchange(path, request(1, "echo", [1]))
        }
        #expect(responses[0]?.result == .success([1]))
        #expect("\(ControlServerError.alreadyRunning(path: "/p"))" == "another vswiftd is listening on /p")
    }

    @Test func regularFileIsNotReplaced() throws {
        let directory = try makeTemporaryDirectory(mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/ctl.sock"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("keep".utf8)))
        let server = ControlServer(socketPath: path, logger: Logger(label: "test"), handler: fakeHandler)
        #expect(throws: ControlServerError.notASocket(path: path)) { try server.start() }
        #expect(FileManager.default.contents(atPath: path) == Data("keep".utf8))
    }
}

@Suite struct ControlClientTests {
    @Test func callsTheServer() async throws {
        let results = try await withServer { path, _ in
            try await blocking {
                let client = ControlClient(socketPath: path)
                return [
                    try client.call("echo", params: ["big": .uint(.max)]),
                    try client.call("add-br", params: ["bridge": "br0"]),
                    try client.call("nope", params: nil),
                ]
            }
        }
        #expect(results[0] == .success(["big": .uint(.max)]))
        #expect(results[1] == .failure(.alreadyExists(#"a bridge named "br0" already exists"#)))
        #expect(results[2] == .failure(.methodNotFound("nope")))
    }

    @Test func decodesTypedResults() async throws {
        let (report, mismatch) = try await withServer { path, _ in
            try await blocking {
                let client = ControlClient(socketPath: path)
                let report = try client.call("show", params: nil, returning: ShowReport.self)
                let mismatch = Result { () throws(ControlClientError) in try client.call("echo", params: [:], returning: ShowReport.self) }
                return (report, mismatch)
            }
        }
        #expect(try report.get().bridges.first?.ports.first == PortDescription(name: "br0", ofport: ofportLocal, type: "internal"))
        #expect(throws: ControlClientError.invalidResponse(#"echo result: missing "systemID""#)) { try mismatch.get() }
    }

    @Test func noServer() throws {
        let directory = try makeTemporaryDirectory(mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/missing.sock"
        let missing = #expect(throws: ControlClientError.self) { try ControlClient(socketPath: path).call("show", params: nil) }
        #expect(missing?.description == "cannot connect to \(path): No such file or directory (is vswiftd running?)")

        try bindAndAbandon(path)
        let refused = #expect(throws: ControlClientError.self) { try ControlClient(socketPath: path).call("show", params: nil) }
        #expect(refused?.description == "cannot connect to \(path): Connection refused (is vswiftd running?)")
    }

    @Test func timesOut() throws {
        let directory = try makeTemporaryDirectory(mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/mute.sock"
        // Listening but never answering: connect succeeds through the backlog, recv waits.
        let listener = try unixListener(path)
        defer { close(listener) }
        let client = ControlClient(socketPath: path, timeout: .milliseconds(200))
        #expect(throws: ControlClientError.timedOut(path: path, timeout: .milliseconds(200))) {
            try client.call("show", params: nil)
        }
    }
}

// MARK: - Raw sockets for the cases a ControlServer cannot produce

/// Leaves a socket file nobody listens on, as a daemon that crashed would.
private func bindAndAbandon(_ path: String) throws {
    close(try unixListener(path))
}


// MARK: - Resource limits (issue 13, defect 5) and verbatim ids (defect 9)

@Suite struct ControlLimitsTests {
    /// A client that sends requests but never reads: the server stops reading it, then disconnects it;
    /// before, it read all 16 MB and buffered every reply.
    @Test func clientThatNeverReadsIsDisconnectedWithItsRepliesBounded() async throws {
        var limits = ControlLimits()
        limits.replyBufferBytes = 64 << 10
        limits.slowReaderTimeout = .seconds(1)
        let received = try await withServer(limits: limits) { path, _ in
            try await blocking { () -> Int in
                let connection = try Connection(path)
                let payload = String(repeating: "x", count: 16 << 10)
                let line = #"{"jsonrpc":"2.0","id":1,"method":"echo","params":[""# + payload + #""]}"# + "\n"
                let batch = String(repeating: line, count: 64)  // 1 MiB
                var sendFailed = false
                for _ in 0..<16 {
                    do { try connection.send(batch) } catch { sendFailed = true; break }
                }
                #expect(sendFailed, "the server should have disconnected a client that never reads")
                var total = 0
                while let reply = try connection.readLine() { total += reply.utf8.count + 1 }
                return total
            }
        }
        // What waited in the server (64 KiB plus one reply) and in the two socket buffers.
        #expect(received < 4 << 20, "\(received) bytes of replies were buffered for a client that never read")
    }

    /// Connections that each hold most of a long line: together they may not hold more than the cap,
    /// and a small request on another connection is still answered at once.
    @Test func requestBytesOfAllConnectionsAreCapped() async throws {
        var limits = ControlLimits()
        limits.maxTotalRequestBytes = 2 << 20
        limits.perConnectionAllowance = 64 << 10
        try await withServer(limits: limits) { path, _ in
            let codes = try await blocking { () -> [Int] in
                let chunk = String(repeating: "y", count: 900 << 10)  // no newline: an unfinished line
                let attackers = try (0..<6).map { _ in try Connection(path) }
                for attacker in attackers { try? attacker.send(chunk) }
                // Meanwhile an ordinary client is served.
                let started = ContinuousClock.now
                let other = try Connection(path)
                try other.send(request(9, "echo", [1]))
                let answer = try other.readResponse()
                #expect(answer?.result == .success([1]))
                #expect(ContinuousClock.now - started < .seconds(2))
                var codes: [Int] = []
                for attacker in attackers {
                    try? attacker.shutdownWriting()
                    if case .failure(let error)? = try attacker.readResponse()?.result { codes.append(error.code) }
                }
                return codes
            }
            #expect(codes.count == 6)
            // 6 × ≥ 700 KiB (what the socket buffer cannot hold) is beyond 2 MiB + 6 × 64 KiB.
            #expect(codes.filter { $0 == RPCError.resourceUnavailable("").code }.count >= 2, "codes: \(codes)")
        }
    }

    @Test func connectionsBeyondTheLimitAreRefused() async throws {
        var limits = ControlLimits()
        limits.maxConnections = 3
        try await withServer(limits: limits) { path, _ in
            try await blocking {
                let open = try (0..<3).map { _ in try Connection(path) }
                for (index, connection) in open.enumerated() {  // all three really are being served
                    try connection.send(request(index, "echo", [1]))
                    _ = try connection.readResponse()
                }
                let extra = try Connection(path)
                guard case .failure(let error)? = try extra.readResponse()?.result else {
                    Issue.record("a fourth connection was served")
                    return
                }
                #expect(error.code == RPCError.resourceUnavailable("").code)
                #expect(try extra.readLine() == nil)
            }
        }
    }

    /// A client streaming garbage lines as fast as it can, never reading, does not hold up another.
    @Test func garbageStreamDoesNotDelayOtherClients() async throws {
        var limits = ControlLimits()
        limits.slowReaderTimeout = .seconds(2)
        try await withServer(limits: limits) { path, _ in
            let stop = Atomic<Bool>(false)
            let attacker = Thread {
                guard let connection = try? Connection(path) else { return }
                let garbage = String(repeating: "{garbage]\n", count: 6_000)
                while !stop.load(ordering: .relaxed) {
                    do { try connection.send(garbage) } catch { return }
                }
            }
            attacker.start()
            defer { stop.store(true, ordering: .relaxed) }
            try await blocking {
                let connection = try Connection(path)
                var times: [Duration] = []
                for id in 0..<50 {
                    let started = ContinuousClock.now
                    try connection.send(request(id, "echo", [.int(Int64(id))]))
                    #expect(try connection.readResponse()?.result == .success([.int(Int64(id))]))
                    times.append(ContinuousClock.now - started)
                }
                // Typical answers stay fast, and none waits anywhere near the attacker's own
                // deadline (a starved client would): the median, not the slowest one, against a
                // tight limit, so that one scheduling hiccup of a loaded machine (0.54 s, seen
                // once) does not fail it.
                times.sort()
                #expect(times[times.count / 2] < .milliseconds(100), "median answer took \(times[times.count / 2])")
                #expect(times[times.count - 1] < .milliseconds(1500), "slowest answer took \(times[times.count - 1])")
            }
        }
    }

    /// JSON-RPC 2.0: the response carries the request's id unchanged, even one no 64-bit integer holds.
    @Test func idsComeBackVerbatim() async throws {
        try await withServer { path, _ in
            try await blocking {
                let connection = try Connection(path)
                for id in ["123456789012345678901234567890", "-1.50", "1E2", #""\u0041b""#] {
                    try connection.send(#"{"jsonrpc":"2.0","id":"# + id + #","method":"echo","params":[1]}"# + "\n")
                    let line = try #require(try connection.readLine())
                    #expect(line.contains(#""id":"# + id + ","), "\(line)")
                    // An error response too.
                    try connection.send(#"{"jsonrpc":"2.0","id":"# + id + #","method":7}"# + "\n")
                    let error = try #require(try connection.readLine())
                    #expect(error.contains(#""id":"# + id + ","), "\(error)")
                }
            }
        }
    }
}
