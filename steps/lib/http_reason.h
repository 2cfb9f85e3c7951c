/*
 * http_reason.h -- HTTP reason phrases, for messages (the http plugin) and
 * for answers (the sample service).
 */
#ifndef SAGA_HTTP_REASON_H
#define SAGA_HTTP_REASON_H

/* The standard reason phrase of `status` ("Conflict"), or "" when unknown. */
const char *saga_http_reason(long status);

#endif
