import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import VSwiftDatapath

/// vswiftd's control socket: JSON-RPC 2.0 over a Unix stream socket, one message per line
/// (see JSONRPC.swift).
///
/// Each connection's requests are handled one at a time, in order, so a client may pipeline them.
/// A bad request gets an error response and the connection stays open; only a line longer than
/// `maxLineLength` closes it, since the rest of that line cannot be framed.
///
/// `handler` does the work; it is a plain closure so tests can run the server with a fake one.
/// Call `start` and `stop` from one thread.
public final class ControlServer {
    /// Answers one request. For a notification (no id) the answer is dropped.
    public typealias Handler = @Sendable (RPCRequest) async -> Result<JSONValue, RPCError>

    /// The longest request line accepted by default: room for add-flows with a million flows.
    public static let defaultMaxLineLength = 512 << 20

    public let socketPath: String
    /// Longer request lines are refused and close the connection.
    public let maxLineLength: Int
    private let logger: Logger
    private let handler: Handler
    private let gate = ShutdownGate()
    private var group: MultiThreadedEventLoopGroup?
    private var channel: (any Channel)?
    /// The socket file this server bound: only that one is removed at `stop`.
    private var boundSocket: ControlSocketFile.Identity?

    public init(
        socketPath: String, logger: Logger, maxLineLength: Int = ControlServer.defaultMaxLineLength,
        handler: @escaping Handler
    ) {
        self.socketPath = socketPath
        self.maxLineLength = maxLineLength
        self.logger = logger
        self.handler = handler
    }

    /// Binds the socket (mode 0600, parent directory created 0755 if missing) and starts serving.
    /// A socket file left by a dead daemon is replaced; a live one is an error.
    public func start() throws {
        precondition(group == nil, "ControlServer started twice")
        try prepareSocketPath()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Create the socket file 0600 from the start: no window in which others could connect.
        let previousUmask = umask(0o077)
        defer { umask(previousUmask) }
        let (handler, logger, gate, maxLineLength) = (self.handler, self.logger, self.gate, self.maxLineLength)
        do {
            // Bound here rather than by NIO, which removes whatever is at the path when it closes
            // the socket (another user's socket, if one was put in our place).
            let bound = try ControlSocketFile.bind(socketPath)
            let channel: any Channel
            do {
                channel = try ServerBootstrap(group: group)
                // Lets a client send its requests, shut down its writing side and still read the answers.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(
                            ByteToMessageHandler(LineDecoder(maxLineLength: maxLineLength)),
                            ConnectionHandler(handler: handler, logger: logger, gate: gate, maxLineLength: maxLineLength))
                    }
                }
                .withBoundSocket(bound.fd)
                .wait()
            } catch {
                close(bound.fd)
                ControlSocketFile.remove(socketPath, ifStill: bound.identity)
                throw error
            }
            boundSocket = bound.identity
            self.channel = channel
            self.group = group
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        logger.info("control socket listening", metadata: ["path": "\(socketPath)"])
    }

    /// Stops accepting, closes every connection, removes the socket file. Responses of requests
    /// still being handled are dropped.
    public func stop() {
        guard let group else { return }
        gate.close()
        try? channel?.close().wait()
        if let boundSocket { ControlSocketFile.remove(socketPath, ifStill: boundSocket) }
        boundSocket = nil
        try? group.syncShutdownGracefully()
        self.channel = nil
        self.group = nil
    }

    private func prepareSocketPath() throws {
        try ControlSocketFile.prepare(socketPath, logger: logger)
    }
}

public enum ControlServerError: Error, Sendable, Equatable, CustomStringConvertible {
    case alreadyRunning(path: String)
    case notASocket(path: String)
    case cannotCheck(path: String, error: SystemError)

    public var description: String {
        switch self {
        case .alreadyRunning(let path): "another vswiftd is listening on \(path)"
        case .notASocket(let path): "\(path) exists and is not a socket; remove it or choose another path"
        case .cannotCheck(let path, let error): "cannot tell whether another vswiftd listens on \(path): \(error)"
        }
    }
}

/// Lets handler tasks hand results back to an event loop only while the server runs: scheduling on
/// a loop that has been shut down is an error in NIO, and a handler may finish after `stop`.
private final class ShutdownGate: Sendable {
    private let isOpen = Mutex(true)

    func close() {
        isOpen.withLock { $0 = false }
    }

    /// Runs `body` on `eventLoop` unless the server has stopped. The lock is held while scheduling,
    /// so `stop` cannot shut the loop down in between.
    func execute(on eventLoop: any EventLoop, _ body: @escaping @Sendable () -> Void) {
        isOpen.withLock { isOpen in
            if isOpen { eventLoop.execute(body) }
        }
    }
}

enum LineFrame: Sendable, Equatable {
    /// Without its "\n" (or "\r\n"); never empty.
    case line(ByteBufferView)
    case tooLong
}

/// Splits the byte stream into lines. After a line longer than `maxLineLength` it emits `tooLong`
/// and discards everything else, as the connection is about to be closed.
struct LineDecoder: ByteToMessageDecoder {
    typealias InboundOut = LineFrame

    let maxLineLength: Int
    /// How far the unfinished line has been searched for "\n", so a long line arriving in many
    /// reads is not searched from its start each time.
    private var searched = 0
    private var discarding = false

    init(maxLineLength: Int) {
        self.maxLineLength = maxLineLength
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if discarding {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        }
        let bytes = buffer.readableBytesView
        // memchr: a byte-by-byte search through the view cost a tenth of a 70 MB add-flows.
        let found = buffer.withUnsafeReadableBytes { raw -> Int? in
            guard let base = raw.baseAddress, raw.count > searched,
                let hit = memchr(base + searched, Int32(UInt8(ascii: "\n")), raw.count - searched)
            else { return nil }
            return base.distance(to: UnsafeRawPointer(hit))
        }
        guard let offset = found else {
            searched = bytes.count
            // A line of maxLineLength may still be waiting for its "\r\n": one byte of slack.
            if bytes.count > maxLineLength + 1 { emit(.tooLong, context: context) }
            return .needMoreData
        }
        let newline = bytes.startIndex + offset
        buffer.moveReaderIndex(forwardBy: offset + 1)
        searched = 0
        emitLine(bytes[..<newline], context: context)
        return .continue
    }

    mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A last request without its "\n" (e.g. `printf '…' | nc -NU …`) is still a request.
        if seenEOF && !discarding && buffer.readableBytes > 0 {
            emitLine(buffer.readableBytesView, context: context)
            buffer.moveReaderIndex(to: buffer.writerIndex)
        }
        return .needMoreData
    }

    private mutating func emitLine(_ line: ByteBufferView, context: ChannelHandlerContext) {
        let line = line.last == UInt8(ascii: "\r") ? line.dropLast() : line
        if line.count > maxLineLength {
            emit(.tooLong, context: context)
        } else if !line.isEmpty {
            emit(.line(line), context: context)
        }
    }

    private mutating func emit(_ frame: LineFrame, context: ChannelHandlerContext) {
        if frame == .tooLong { discarding = true }
        context.fireChannelRead(wrapInboundOut(frame))
    }
}

/// Runs one connection's requests one after another and writes the responses in order.
private final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = LineFrame
    typealias OutboundOut = ByteBuffer

    private enum Work {
        case frame(LineFrame)
        /// The client shut down its side: close once everything before has been answered.
        case end
    }

    private let handler: ControlServer.Handler
    private let logger: Logger
    private let gate: ShutdownGate
    private let maxLineLength: Int
    private var queue: [Work] = []
    /// A request is with `handler`; the rest of the queue waits for it.
    private var busy = false
    private var closing = false
    /// Completes when the last response written has been handed to the socket.
    private var lastWrite: EventLoopFuture<Void>?

    init(handler: @escaping ControlServer.Handler, logger: Logger, gate: ShutdownGate, maxLineLength: Int) {
        self.handler = handler
        self.logger = logger
        self.gate = gate
        self.maxLineLength = maxLineLength
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        enqueue(.frame(unwrapInboundIn(data)), context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            enqueue(.end, context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        queue.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("control connection failed", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    private func enqueue(_ work: Work, context: ChannelHandlerContext) {
        guard !closing else { return }
        queue.append(work)
        if !busy { processQueue(context: context) }
    }

    private func processQueue(context: ChannelHandlerContext) {
        while !busy && !closing && !queue.isEmpty {
            switch queue.removeFirst() {
            case .end:
                close(context: context)
            case .frame(.tooLong):
                let error = RPCError.invalidRequest("line longer than \(maxLineLength) bytes")
                write(RPCCodec.encodeResponse(id: nil, result: .failure(error)), context: context)
                close(context: context)
            case .frame(.line(let line)):
                switch RPCCodec.decodeRequest(line) {
                case .failure(let failure):
                    logger.debug("bad control request", metadata: ["error": "\(failure.error)"])
                    write(RPCCodec.encodeResponse(id: failure.id, result: .failure(failure.error)), context: context)
                case .success(let request):
                    busy = true
                    call(request, context: context)
                }
            }
        }
    }

    private func call(_ request: RPCRequest, context: ChannelHandlerContext) {
        logger.trace("control request", metadata: ["method": "\(request.method)"])
        let (handler, gate, eventLoop) = (self.handler, self.gate, context.eventLoop)
        let this = NIOLoopBound((handler: self, context: context), eventLoop: eventLoop)
        Task {
            let result = await handler(request)
            gate.execute(on: eventLoop) {
                let (connection, context) = this.value
                connection.busy = false
                // Notifications get no response.
                if let id = request.id, !connection.closing {
                    connection.write(RPCCodec.encodeResponse(id: id, result: result), context: context)
                }
                connection.processQueue(context: context)
            }
        }
    }

    private func write(_ bytes: [UInt8], context: ChannelHandlerContext) {
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: promise)
        lastWrite = promise.futureResult
    }

    /// Closes once the last response has gone out: closing at once would drop what the socket has
    /// not taken yet (a dump-flows of a million flows is some 200 MB).
    private func close(context: ChannelHandlerContext) {
        closing = true
        queue.removeAll()
        guard let lastWrite else {
            context.close(promise: nil)
            return
        }
        let channel = context.channel
        lastWrite.whenComplete { _ in channel.close(promise: nil) }
    }
}
