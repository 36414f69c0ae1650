import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import VSwiftDatapath
import VSwiftProtocol

/// vswiftd's control socket: JSON-RPC 2.0 over a Unix stream socket, one message per line
/// (see JSONRPC.swift).
///
/// Each connection's requests are handled one at a time, in order, so a client may pipeline them.
/// A bad request gets an error response and the connection stays open; only a line longer than
/// `maxLineLength` closes it, since the rest of that line cannot be framed.
///
/// Every client is hostile until proven otherwise, so what one can make the daemon hold is bounded
/// (`ControlLimits`): the request bytes of all connections together, the replies waiting for one
/// connection (the socket is not read while they wait: the client's further requests stay in its
/// own socket buffer), and the number of connections.
///
/// `handler` does the work; it is a plain closure so tests can run the server with a fake one.
/// `stop` may be called from any thread (the daemon calls it from its signal handler).
public final class ControlServer: Sendable {
    /// Answers one request. For a notification (no id) the answer is dropped.
    public typealias Handler = @Sendable (RPCRequest) async -> Result<JSONValue, RPCError>

    /// The longest request line accepted by default: add-flows with a million flows is some
    /// 100 MB of flow text (110 MB as JSON), so 256 MiB leaves room for longer flows while two
    /// such requests at once already hit the total cap (`ControlLimits.maxTotalRequestBytes`).
    public static let defaultMaxLineLength = 256 << 20

    public let socketPath: String
    /// Longer request lines are refused and close the connection.
    public let maxLineLength: Int
    public let limits: ControlLimits
    private let logger: Logger
    private let handler: Handler
    private let gate = ShutdownGate()
    /// Set by `start`, taken by `stop`.
    private let running = Mutex<Running?>(nil)

    private struct Running {
        let group: MultiThreadedEventLoopGroup
        let channel: any Channel
        /// The socket file this server bound: only that one is removed at `stop`.
        let boundSocket: ControlSocketFile.Identity
    }

    public init(
        socketPath: String, logger: Logger, maxLineLength: Int = ControlServer.defaultMaxLineLength,
        limits: ControlLimits = ControlLimits(), handler: @escaping Handler
    ) {
        self.socketPath = socketPath
        self.maxLineLength = maxLineLength
        self.limits = limits
        self.logger = logger
        self.handler = handler
    }

    /// Binds the socket (mode 0600, parent directory created 0755 if missing) and starts serving.
    /// A socket file left by a dead daemon is replaced; a live one is an error.
    public func start() throws {
        precondition(running.withLock { $0 == nil }, "ControlServer started twice")
        try prepareSocketPath()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Create the socket file 0600 from the start: no window in which others could connect.
        let previousUmask = umask(0o077)
        defer { umask(previousUmask) }
        let (handler, logger, gate, maxLineLength, limits) = (self.handler, self.logger, self.gate, self.maxLineLength, self.limits)
        let budget = RequestBudget(limit: limits.maxTotalRequestBytes)
        let connections = ConnectionCount()
        do {
            // Bound here rather than by NIO, which removes whatever is at the path when it closes
            // the socket (another user's socket, if one was put in our place).
            let bound = try ControlSocketFile.bind(socketPath)
            let channel: any Channel
            do {
                channel = try ServerBootstrap(group: group)
                // Lets a client send its requests, shut down its writing side and still read the answers.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                // Above the high mark the connection is "not writable": ConnectionHandler then stops
                // reading and handling requests until the client has taken its replies.
                .childChannelOption(
                    .writeBufferWaterMark,
                    value: .init(low: limits.replyBufferBytes / 2, high: limits.replyBufferBytes))
                .childChannelInitializer { channel in
                    guard connections.enter(limit: limits.maxConnections) else {
                        logger.warning("refusing a control connection: \(limits.maxConnections) are open already")
                        let error = RPCError.resourceUnavailable("too many control connections (at most \(limits.maxConnections))")
                        return channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(RefusingHandler(reply: RPCCodec.encodeResponse(id: nil, result: .failure(error))))
                        }
                    }
                    channel.closeFuture.whenComplete { _ in connections.leave() }
                    return channel.eventLoop.makeCompletedFuture {
                        let reservation = RequestReservation(budget: budget, allowance: limits.perConnectionAllowance)
                        try channel.pipeline.syncOperations.addHandlers(
                            ByteToMessageHandler(LineDecoder(maxLineLength: maxLineLength, reservation: reservation)),
                            ConnectionHandler(
                                handler: handler, logger: logger, gate: gate, maxLineLength: maxLineLength,
                                limits: limits, reservation: reservation))
                    }
                }
                .withBoundSocket(bound.fd)
                .wait()
            } catch {
                close(bound.fd)
                ControlSocketFile.remove(socketPath, ifStill: bound.identity)
                throw error
            }
            running.withLock { $0 = Running(group: group, channel: channel, boundSocket: bound.identity) }
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        logger.info("control socket listening", metadata: ["path": "\(socketPath)"])
    }

    /// Stops accepting, closes every connection, removes the socket file. Responses of requests
    /// still being handled are dropped.
    public func stop() {
        guard let running = running.withLock({ state in state.take() }) else { return }
        gate.close()
        try? running.channel.close().wait()
        ControlSocketFile.remove(socketPath, ifStill: running.boundSocket)
        try? running.group.syncShutdownGracefully()
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


/// Answers a connection beyond `maxConnections` with its error and closes it (the reply can only
/// be written once the channel is active).
private final class RefusingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let reply: [UInt8]

    init(reply: [UInt8]) {
        self.reply = reply
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(bytes: reply))).whenComplete { _ in
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}  // ignored
}

/// Runs one connection's requests one after another and writes the responses in order.
///
/// It holds back the channel's reads (the outbound `read` event) while a request is being handled,
/// while requests wait, or while replies wait for the client: the bytes stay in the kernel's
/// socket buffer, and the client blocks, instead of piling up here.
private final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = LineFrame
    typealias OutboundIn = ByteBuffer
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
    private let limits: ControlLimits
    private let reservation: RequestReservation
    private var queue: [Work] = []
    /// A request is with `handler`; the rest of the queue waits for it.
    private var busy = false
    private var closing = false
    /// A read was asked for while reading was held back.
    private var readPending = false
    /// Completes when the last response written has been handed to the socket.
    private var lastWrite: EventLoopFuture<Void>?
    /// The rest of the queue is to be handled in a later turn of the event loop.
    private var continueScheduled = false
    private static let linesPerTurn = 32
    /// Runs while replies wait for a client that does not take them.
    private var slowReaderCheck: Scheduled<Void>?

    init(
        handler: @escaping ControlServer.Handler, logger: Logger, gate: ShutdownGate, maxLineLength: Int,
        limits: ControlLimits, reservation: RequestReservation
    ) {
        self.handler = handler
        self.logger = logger
        self.gate = gate
        self.maxLineLength = maxLineLength
        self.limits = limits
        self.reservation = reservation
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
        reservation.release()
        slowReaderCheck?.cancel()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        reservation.release()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("control connection failed", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if holdingBack(context) {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            slowReaderCheck?.cancel()
            slowReaderCheck = nil
            processQueue(context: context)
        } else if slowReaderCheck == nil {
            watchSlowReader(context: context, buffered: Self.bufferedReplyBytes(context))
        }
        context.fireChannelWritabilityChanged()
    }

    private static func bufferedReplyBytes(_ context: ChannelHandlerContext) -> Int {
        (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
    }

    private func holdingBack(_ context: ChannelHandlerContext) -> Bool {
        busy || !queue.isEmpty || !context.channel.isWritable
    }

    private func resumeReading(context: ChannelHandlerContext) {
        if readPending && !closing && !holdingBack(context) {
            readPending = false
            context.read()
        }
    }

    /// Disconnects a client whose replies have waited `slowReaderTimeout` without the socket
    /// taking any of them: it is not reading, and would otherwise hold its replies here for ever.
    private func watchSlowReader(context: ChannelHandlerContext, buffered previous: Int) {
        let this = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        slowReaderCheck = context.eventLoop.scheduleTask(in: limits.slowReaderTimeout) {
            let (connection, context) = this.value
            guard !connection.closing, !context.channel.isWritable else { return }
            let buffered = Self.bufferedReplyBytes(context)
            if buffered < previous {
                connection.watchSlowReader(context: context, buffered: buffered)  // slow, but reading
                return
            }
            connection.logger.warning(
                "disconnecting a control client that does not read its replies",
                metadata: ["waiting bytes": "\(buffered)", "seconds": "\(connection.limits.slowReaderTimeout.nanoseconds / 1_000_000_000)"])
            connection.closing = true
            connection.queue.removeAll()
            context.close(promise: nil)
        }
    }

    private func enqueue(_ work: Work, context: ChannelHandlerContext) {
        guard !closing else { return }
        queue.append(work)
        // Handled in a turn of its own, with the other lines of this read (see linesPerTurn).
        if !busy { scheduleProcessing(context: context) }
    }

    private func scheduleProcessing(context: ChannelHandlerContext, after delay: TimeAmount? = nil) {
        guard !continueScheduled else { return }
        continueScheduled = true
        let this = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let body: @Sendable () -> Void = {
            let (connection, context) = this.value
            if connection.continueScheduled { connection.processQueue(context: context) }
        }
        if let delay {
            context.eventLoop.scheduleTask(in: delay, body)
        } else {
            context.eventLoop.execute(body)
        }
    }

    private func processQueue(context: ChannelHandlerContext) {
        continueScheduled = false
        var handled = 0
        defer { if handled > 0 { context.flush() } }
        // Replies the client has not taken stop the work too: otherwise a client that sends but
        // never reads would have a reply buffered for each of its requests.
        while !busy && !closing && !queue.isEmpty && context.channel.isWritable {
            // A few lines per turn of the event loop, then the other connections' turn: one read
            // can hold thousands of (garbage) lines.
            if handled == Self.linesPerTurn {
                // Not `execute`: NIO runs tasks queued by tasks before it polls the sockets again.
                // A task due a little later lets the loop serve other connections first.
                scheduleProcessing(context: context, after: .milliseconds(1))
                return
            }
            handled += 1
            switch queue.removeFirst() {
            case .end:
                close(context: context)
            case .frame(.tooLong):
                let error = RPCError.invalidRequest("line longer than \(maxLineLength) bytes")
                write(RPCCodec.encodeResponse(id: nil, result: .failure(error)), context: context)
                close(context: context)
            case .frame(.overBudget):
                logger.warning("refusing a control request: requests being received hold \(limits.maxTotalRequestBytes) bytes already")
                let error = RPCError.resourceUnavailable(
                    "the control server holds \(limits.maxTotalRequestBytes) bytes of requests already; try again later")
                write(RPCCodec.encodeResponse(id: nil, result: .failure(error)), context: context)
                close(context: context)
            case .frame(.line(let line)):
                let decoded = RPCCodec.decodeRequest(line)
                switch decoded {
                case .failure(let failure):
                    reservation.release()
                    logger.debug("bad control request", metadata: ["error": "\(failure.error)"])
                    write(
                        RPCCodec.encodeResponse(id: failure.id, idText: failure.idText, result: .failure(failure.error)),
                        context: context)
                case .success(let request):
                    busy = true
                    call(request, context: context)
                }
            }
        }
        resumeReading(context: context)
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
                // The request's bytes count against the total until it has been carried out.
                connection.reservation.release()
                // Notifications get no response.
                if let id = request.id, !connection.closing {
                    connection.write(RPCCodec.encodeResponse(id: id, idText: request.idText, result: result), context: context)
                    context.flush()
                }
                connection.processQueue(context: context)
            }
        }
    }
    private func write(_ bytes: [UInt8], context: ChannelHandlerContext) {
        let promise = context.eventLoop.makePromise(of: Void.self)
        // Flushed by processQueue once per turn.
        context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: promise)
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
