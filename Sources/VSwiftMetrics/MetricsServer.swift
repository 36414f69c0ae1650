import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The metrics endpoint: HTTP/1.1 on one TCP listener, answering `GET /metrics` (a query string
/// is ignored) with `render()`'s bytes, 404 for any other path and 405 for any other method.
///
/// Anyone who can reach the address may connect, so what a client can make vswiftd hold is
/// bounded (`Limits`): a few connections at once, a small request (head and body together), and a
/// deadline for the request to arrive; each connection carries one request and is then closed.
/// Rendering runs one scrape at a time in the switch's service (its counters only), never on the
/// packet path.
public final class MetricsServer: Sendable {
    /// Renders the response body of one scrape.
    public typealias Render = @Sendable () async -> [UInt8]

    public struct Limits: Sendable {
        /// Connections open at once; more are closed as soon as they are accepted.
        public var maxConnections = 8
        /// Bytes a connection may send: a scrape's request is a few hundred.
        public var maxRequestBytes = 16 << 10
        /// Time from accepting a connection to having its whole request.
        public var requestTimeout: TimeAmount = .seconds(10)

        public init() {}
    }

    public let host: String
    public let port: Int
    public let limits: Limits
    private let logger: Logger
    private let render: Render
    /// Set by `start`, taken by `stop`.
    private let running = Mutex<(group: MultiThreadedEventLoopGroup, channel: any Channel)?>(nil)

    public init(host: String, port: Int, limits: Limits = Limits(), logger: Logger, render: @escaping Render) {
        self.host = host
        self.port = port
        self.limits = limits
        self.logger = logger
        self.render = render
    }

    /// The port actually bound (differs from `port` when that was 0); nil before `start`.
    public var boundPort: Int? {
        running.withLock { $0?.channel.localAddress?.port }
    }

    /// Binds and starts serving; throws when the address cannot be bound.
    public func start() throws {
        precondition(running.withLock { $0 == nil }, "MetricsServer started twice")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (render, logger, limits) = (self.render, self.logger, self.limits)
        let counter = ConnectionCounter()
        do {
            let channel = try ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 16)
                .childChannelInitializer { channel in
                    guard counter.enter(limit: limits.maxConnections) else {
                        logger.debug("metrics: refusing a connection, \(limits.maxConnections) are open")
                        return channel.close()
                    }
                    channel.closeFuture.whenComplete { _ in counter.leave() }
                    return channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(RequestSizeLimit(maxBytes: limits.maxRequestBytes))
                        try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: true)
                        try sync.addHandler(MetricsRequestHandler(render: render, requestTimeout: limits.requestTimeout))
                    }
                }
                .bind(to: try SocketAddress.makeAddressResolvingHost(host, port: port))
                .wait()
            running.withLock { $0 = (group, channel) }
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        logger.info("metrics endpoint listening", metadata: ["address": "\(host):\(boundPort ?? port)"])
    }

    /// Stops accepting and closes every connection (from any thread).
    public func stop() {
        guard let running = running.withLock({ $0.take() }) else { return }
        try? running.channel.close().wait()
        try? running.group.syncShutdownGracefully()
    }
}

/// Open connections, for the cap.
private final class ConnectionCounter: Sendable {
    private let count = Atomic<Int>(0)

    func enter(limit: Int) -> Bool {
        if count.wrappingAdd(1, ordering: .relaxed).newValue <= limit { return true }
        count.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    func leave() { count.wrappingSubtract(1, ordering: .relaxed) }
}

/// Closes a connection that sends more than `maxBytes` in all, before the HTTP decoder holds it
/// (one request per connection, so that is the request's size, head and body).
private final class RequestSizeLimit: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let maxBytes: Int
    private var received = 0

    init(maxBytes: Int) { self.maxBytes = maxBytes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytes
        guard received <= maxBytes else {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }
}

/// Answers one request per connection, then closes it.
private final class MetricsRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let render: MetricsServer.Render
    private let requestTimeout: TimeAmount
    private var head: HTTPRequestHead?
    private var answered = false
    private var deadline: Scheduled<Void>?

    init(render: @escaping MetricsServer.Render, requestTimeout: TimeAmount) {
        self.render = render
        self.requestTimeout = requestTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // A client that connects and never finishes its request is cut off.
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: requestTimeout) { bound.value.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
        case .body:
            break  // counted by RequestSizeLimit; a GET has no use for it
        case .end:
            guard let head, !answered else { return }
            answered = true
            deadline?.cancel()
            let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            guard head.method == .GET else {
                respond(context, .methodNotAllowed, Array("only GET /metrics\n".utf8), extraHeaders: [("Allow", "GET")])
                return
            }
            guard path == "/metrics" else {
                respond(context, .notFound, Array("not found: only /metrics is served\n".utf8))
                return
            }
            let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
            let render = self.render
            context.eventLoop.makeFutureWithTask { await render() }.whenSuccess { body in
                bound.value.handler.respond(
                    bound.value.context, .ok, body, contentType: MetricsExposition.contentType)
            }
        }
    }

    private func respond(
        _ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ body: [UInt8],
        contentType: String = "text/plain; charset=utf-8", extraHeaders: [(String, String)] = []
    ) {
        var headers = HTTPHeaders([
            ("Content-Type", contentType), ("Content-Length", String(body.count)), ("Connection", "close"),
        ])
        headers.add(contentsOf: extraHeaders)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
    }
}
