import VSwiftLISPControl
import VSwiftPacket

extension XTRControlPlane {
    /// Decodes a datagram from port 4342 and hands it to its job. Every refusal is counted by
    /// reason; nothing that arrives can trap (the codec checks every length) or change state
    /// without passing its check (nonce, HMAC, ownership of the EID).
    mutating func dispatch(_ bytes: [UInt8], from source: IPAddress, sourcePort: UInt16, now: Double) -> [OutgoingDatagram] {
        let message: ControlMessage
        do {
            message = try ControlMessage.decode(bytes)
        } catch .unknownMessageType {
            counters.count(.refusedUnknownType)
            return []
        } catch {
            counters.count(.refusedMalformed)
            return []
        }
        switch message {
        case .mapNotify(let notify):
            return handleMapNotify(notify, bytes: bytes, from: source, now: now)
        case .mapReply(let reply):
            handleMapReply(reply, now: now)
            return []
        case .mapRequest(let request):
            return handleMapRequest(request, replyPort: sourcePort, now: now)
        case .encapsulated(let ecm):
            // RFC 9301 §8.3: a map-server forwards a Map-Request to the ETR in an ECM; the reply
            // goes to an ITR-RLOC at the inner UDP source port (§5.8 inner UDP, §5.5).
            guard let request = ecm.mapRequest else {
                counters.count(.refusedUnknownType)
                return []
            }
            return handleMapRequest(request, replyPort: ecm.sourcePort, now: now)
        case .mapRegister, .mapNotifyAck:
            // Messages a map-server takes, not an xTR.
            counters.count(.refusedUnknownType)
            return []
        }
    }

    mutating func handleMapRequest(_ request: MapRequest, replyPort: UInt16, now: Double) -> [OutgoingDatagram] {
        if request.solicitMapRequest { return handleSMR(request, now: now) }
        return answerMapRequest(request, replyPort: replyPort, now: now)
    }

    /// RFC 9301 §5.7: a Map-Notify acknowledging our Map-Register registers us; an authenticated
    /// one that acknowledges nothing we sent is the map-server's unsolicited notification ("out of
    /// scope" of RFC 9301, RFC 9437), answered with a Map-Notify-Ack ("fields ... copied from the
    /// corresponding Map-Notify", authenticated with the same key) to its sender at port 4342
    /// (§5.7: "source and destination UDP ports equal to 4342").
    mutating func handleMapNotify(_ notify: MapNotify, bytes: [UInt8], from source: IPAddress, now: Double) -> [OutgoingDatagram] {
        switch registration.handleNotify(notify, bytes: bytes, from: source, now: now) {
        case .acknowledged:
            counters.count(.receivedMapNotify)
            return []
        case .refused(let reason):
            counters.count(reason)
            return []
        case .unsolicited(let key):
            counters.count(.receivedUnsolicitedMapNotify)
            guard replyBudget.take(now: now) else {
                counters.count(.refusedRateLimited)
                return []
            }
            let ack = MapNotify(nonce: notify.nonce, records: notify.records, xtrIdentity: notify.xtrIdentity)
            guard let ackBytes = try? ack.encoded(authenticatingWith: key, acknowledgement: true) else {
                counters.count(.refusedMalformed)
                return []
            }
            counters.count(.sentMapNotifyAck)
            return [OutgoingDatagram(destination: source, destinationPort: lispControlPort, bytes: ackBytes)]
        }
    }
}
