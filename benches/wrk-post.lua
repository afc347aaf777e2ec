-- wrk script for benches/outside-load.sh: POST the file named by $BODY, as JSON, on every
-- request (wrk sends GET without a body unless a script says otherwise).
local file = assert(io.open(assert(os.getenv("BODY"), "set BODY to a file"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
