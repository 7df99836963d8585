# clamd from Debian's packages on TCP 3310, as the official image serves it. No signature can
# be downloaded offline: it knows the EICAR test file only (a one-line MD5 database).
ARG DEBIAN_IMAGE=docker.io/library/debian:12.11-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clamav-daemon tini \
 && rm -rf /var/lib/apt/lists/* \
 && printf '%s\n' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' \
    | tr -d '\n' > /tmp/eicar \
 && echo "$(md5sum /tmp/eicar | cut -d' ' -f1):68:Eicar-Test-Signature" > /var/lib/clamav/eicar.hdb \
 && rm /tmp/eicar \
 && printf '%s\n' 'TCPSocket 3310' 'TCPAddr 0.0.0.0' 'Foreground yes' 'LogTime yes' \
    'DatabaseDirectory /var/lib/clamav' 'StreamMaxLength 600M' 'MaxScanSize 600M' \
    'MaxFileSize 600M' 'AlertExceedsMax yes' 'User clamav' > /etc/clamav/clamd.conf \
 && chown -R clamav:clamav /var/lib/clamav
USER clamav
EXPOSE 3310
ENTRYPOINT ["tini", "--"]
CMD ["clamd", "-c", "/etc/clamav/clamd.conf"]
