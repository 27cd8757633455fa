#!/bin/sh
# Reloads nginx with the new upstreams (run by job "nginx-reload" on each render). The first
# render starts nginx rather than reload it: until nginx wrote its pid there is nothing to
# reload.
if [ ! -s run/nginx.pid ]; then
    echo "nginx is not running yet; it starts with these upstreams"
    exit 0
fi
exec nginx -p run/ -c nginx.conf -e stderr -s reload
