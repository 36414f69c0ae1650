import Foundation
import Logging
import VSwiftControl
import VSwiftProtocol

/// Telling systemd (unit `Type=notify`, see packaging/vswiftd.service) where vswiftd is: `READY=1`
/// once the control socket has answered a request — bound is not enough, the service must be
/// serving, so that `systemctl start vswiftd && vswiftctl show` never races — and `STOPPING=1`
/// when a signal starts the shutdown. Without `$NOTIFY_SOCKET` both do nothing but the check.
struct Readiness: Sendable {
    let notifier = ServiceNotifier(environment: ProcessInfo.processInfo.environment)
    let logger: Logger

    /// Asks the control socket at `socketPath` for `show` as a client would; throws when it does not answer.
    func confirmServing(socketPath: String) throws {
        let client = ControlClient(socketPath: socketPath, timeout: .seconds(30))
        _ = try client.call(ControlMethod.show.rawValue, params: nil).get()
    }

    func announceReady(_ status: String) {
        send(["READY=1", "STATUS=" + status])
    }

    func announceStopping() {
        send(["STOPPING=1", "STATUS=shutting down"])
    }

    private func send(_ assignments: [String]) {
        guard let notifier else { return }
        do {
            try notifier.notify(assignments)
        } catch {
            logger.warning("cannot notify the service manager at \(notifier.address): \(error)")
        }
    }
}
