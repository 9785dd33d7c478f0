/*
 * message - the RFC 5322 checks and fixes applied to every submitted
 * message before it is signed and queued (see message.h).
 *
 * message_prepare() walks the message once to find the lines and the end
 * of the header section, splits the header section into fields (folded
 * lines joined to their field, RFC 5322 2.2.3), runs the checks in a fixed
 * order so the client always gets the same reason, and builds the output:
 * our Received: (RFC 5321 4.4) first, the client's fields minus Bcc:
 * (RFC 5322 3.6.3), Date:/Message-ID: when missing, then the blank line and
 * the body byte for byte.
 *
 * message_parse_mailbox() is a small tokenizer plus a state machine for
 * the mailbox-list / address-list grammar (RFC 5322 3.4) and its common
 * obsolete forms (4.4). It has no recursion (comments nest through a
 * counter), reads nothing past `len`, and runs in one pass.
 *
 * The message is untrusted: sizes come from the caller, every copy is
 * bounded, and the text we add is stripped of control characters.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "message.h"

#define RCVD_FOLD 78        /* RFC 5322 2.1.1 SHOULD */
#define RCVD_PART_MAX 255   /* one item of Received:, cut to this */
#define DATE_MAX 64

/* Fields that RFC 5322 3.6 allows at most once; From is checked apart. */
static const char *const single_fields[] = {
	"Sender", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID",
	"Reply-To", "In-Reply-To", "References",
};

struct field {
	size_t start;       /* first octet of the name */
	size_t namelen;
	size_t value;       /* first octet after ':' */
	size_t end;         /* after the CRLF of the last continuation line */
};

/* A growable output buffer; allocation failure is fatal (util.h). */
struct obuf {
	char *p;
	size_t len, cap;
};

/* ob_add - append n octets, growing the buffer */
static void
ob_add(struct obuf *b, const char *s, size_t n)
{
	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->len < n)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* ob_str - append a C string */
static void
ob_str(struct obuf *b, const char *s)
{
	ob_add(b, s, strlen(s));
}

/* lower - ASCII only, whatever the locale */
static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* name_is - case-insensitive compare of a field name (RFC 5322 1.2.2) */
static int
name_is(const char *in, const struct field *f, const char *name)
{
	size_t n = strlen(name);

	if (f->namelen != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)in[f->start + i]) != lower((unsigned char)name[i]))
			return 0;
	return 1;
}

/*
 * Mailbox-list parsing (RFC 5322 3.4).
 */
enum tok {
	T_END, T_ERR, T_ATOM, T_QSTR, T_DLIT, T_DOT, T_AT, T_COMMA,
	T_COLON, T_SEMI, T_LT, T_GT,
};

struct lexer {
	const char *s;
	size_t len, pos;
};

/* is_atext - RFC 5322 3.2.3; octets >= 0x80 too (RFC 6532 3.2) */
static int
is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c >= 0x80 ||
	    (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* lex_cfws - skip white space, folding and (nested) comments (RFC 5322
 * 3.2.2); -1 on an unbalanced comment */
static int
lex_cfws(struct lexer *lx)
{
	while (lx->pos < lx->len) {
		char c = lx->s[lx->pos];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			lx->pos++;
		} else if (c == '(') {
			size_t depth = 1;

			lx->pos++;
			while (depth > 0) {
				if (lx->pos >= lx->len)
					return -1;
				c = lx->s[lx->pos++];
				if (c == '\\') {
					if (lx->pos >= lx->len)
						return -1;
					lx->pos++;
				} else if (c == '(') {
					depth++;
				} else if (c == ')') {
					depth--;
				}
			}
		} else {
			break;
		}
	}
	return 0;
}

/* lex_next - the next token; its octets are s[*start .. *start + *n) */
static enum tok
lex_next(struct lexer *lx, size_t *start, size_t *n)
{
	const char *s = lx->s;
	size_t p;

	if (lex_cfws(lx) < 0)
		return T_ERR;
	p = lx->pos;
	*start = p;
	*n = 1;
	if (p >= lx->len)
		return T_END;
	switch (s[p]) {
	case '.': lx->pos++; return T_DOT;
	case '@': lx->pos++; return T_AT;
	case ',': lx->pos++; return T_COMMA;
	case ':': lx->pos++; return T_COLON;
	case ';': lx->pos++; return T_SEMI;
	case '<': lx->pos++; return T_LT;
	case '>': lx->pos++; return T_GT;
	case '"':
	case '[': {
		char close = s[p] == '"' ? '"' : ']';

		for (p++; p < lx->len && s[p] != close; p++) {
			if (s[p] == '\\' && ++p >= lx->len)
				return T_ERR;
			if (close == ']' && s[p] == '[')
				return T_ERR;
		}
		if (p >= lx->len)
			return T_ERR;
		*n = p + 1 - lx->pos;
		lx->pos = p + 1;
		return close == '"' ? T_QSTR : T_DLIT;
	}
	default:
		while (p < lx->len && is_atext((unsigned char)s[p]))
			p++;
		if (p == lx->pos)
			return T_ERR;   /* ')', '\\', a control, ... */
		*n = p - lx->pos;
		lx->pos = p;
		return T_ATOM;
	}
}

/* States of one list element; the A_ states are inside "<...>". */
enum mstate {
	M_START,        /* nothing yet */
	M_PHRASE,       /* words and dots: a display name or a local part */
	M_DOMAIN,       /* after '@' of a bare addr-spec */
	M_DOMAIN_END,   /* a domain atom seen; '.' or the end */
	M_DOMAIN_DOT,   /* after '.' in the domain */
	M_DONE,         /* mailbox complete; only CFWS until ',' or ';' */
	M_GROUP_DONE,   /* after a group's ';' */
	A_START,        /* after '<' */
	A_ROUTE,        /* after '@' of an obs-route (RFC 5322 4.4) */
	A_ROUTE_END,    /* route domain item seen: '.', ',' or ':' */
	A_ROUTE_AT,     /* after ',' in the route: wants '@' */
	A_LOCAL,        /* in the local part */
	A_DOMAIN,       /* after '@' */
	A_DOMAIN_END,   /* a domain atom seen: '.' or '>' */
	A_DOMAIN_DOT,   /* after '.' in the domain */
	A_DLIT_END,     /* a domain literal seen: '>' */
};

struct mparse {
	char cand[ADDR_MAX + 1];    /* addr-spec of the current element */
	size_t clen;
	int overflow;
	int local_ok;   /* the phrase so far is also a valid local part */
	int last_word;  /* the last word/dot token was a word */
};

/* cand_add - append token octets to the candidate addr-spec, dropping
 * the CR/LF of folding inside quoted strings */
static void
cand_add(struct mparse *m, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' || s[i] == '\n')
			continue;
		if (m->clen >= sizeof(m->cand) - 1) {
			m->overflow = 1;
			return;
		}
		m->cand[m->clen++] = s[i];
	}
}

/* cand_reset - start a new element */
static void
cand_reset(struct mparse *m)
{
	m->clen = 0;
	m->overflow = 0;
	m->local_ok = 1;
	m->last_word = 0;
}

/* word_step - one word or dot of a local part or phrase; returns 0 if it
 * keeps the local-part shape word *("." word) so far */
static int
word_step(struct mparse *m, enum tok t)
{
	int bad = t == T_DOT ? !m->last_word : m->last_word;

	m->last_word = t != T_DOT;
	return bad ? -1 : 0;
}

/* mbox_step - feed one token to the element state machine; -1 if the
 * token cannot appear here */
static int
mbox_step(struct mparse *m, enum mstate *st, enum tok t, const char *tx, size_t tn,
    int *in_group, int *members)
{
	int word = t == T_ATOM || t == T_QSTR;

	switch (*st) {
	case M_START:
	case M_PHRASE:
		if (word || t == T_DOT) {
			if (word_step(m, t) < 0)
				m->local_ok = 0;
			cand_add(m, tx, tn);
			*st = M_PHRASE;
		} else if (t == T_AT && *st == M_PHRASE && m->local_ok && m->last_word) {
			cand_add(m, "@", 1);
			*st = M_DOMAIN;
		} else if (t == T_LT) {
			cand_reset(m);
			*st = A_START;
		} else if (t == T_COLON && *st == M_PHRASE && !*in_group) {
			/* group = display-name ":" [group-list] ";" (3.4) */
			*in_group = 1;
			*members = 0;
			cand_reset(m);
			*st = M_START;
		} else {
			return -1;
		}
		return 0;
	case M_DOMAIN:
	case M_DOMAIN_DOT:
		if (t == T_ATOM)
			*st = M_DOMAIN_END;
		else if (t == T_DLIT && *st == M_DOMAIN)
			*st = M_DONE;
		else
			return -1;
		cand_add(m, tx, tn);
		return 0;
	case M_DOMAIN_END:
	case A_DOMAIN_END:
		if (t == T_DOT) {
			cand_add(m, ".", 1);
			*st = *st == M_DOMAIN_END ? M_DOMAIN_DOT : A_DOMAIN_DOT;
			return 0;
		}
		if (t == T_GT && *st == A_DOMAIN_END) {
			*st = M_DONE;
			return 0;
		}
		return -1;
	case A_START:
		if (t == T_AT) {
			*st = A_ROUTE;   /* obs-route: checked, then dropped */
			return 0;
		}
		/* FALLTHROUGH */
	case A_LOCAL:
		if (word || t == T_DOT) {
			if (word_step(m, t) < 0)
				return -1;
			cand_add(m, tx, tn);
			*st = A_LOCAL;
		} else if (t == T_AT && *st == A_LOCAL && m->last_word) {
			cand_add(m, "@", 1);
			*st = A_DOMAIN;
		} else {
			return -1;
		}
		return 0;
	case A_ROUTE:
		if (t != T_ATOM && t != T_DLIT)
			return -1;
		*st = A_ROUTE_END;
		return 0;
	case A_ROUTE_END:
		if (t == T_DOT)
			*st = A_ROUTE;
		else if (t == T_COMMA)
			*st = A_ROUTE_AT;
		else if (t == T_COLON)
			*st = A_LOCAL;   /* last_word is 0: a word must follow */
		else
			return -1;
		return 0;
	case A_ROUTE_AT:
		if (t != T_AT)
			return -1;
		*st = A_ROUTE;
		return 0;
	case A_DOMAIN:
	case A_DOMAIN_DOT:
		if (t == T_ATOM)
			*st = A_DOMAIN_END;
		else if (t == T_DLIT && *st == A_DOMAIN)
			*st = A_DLIT_END;
		else
			return -1;
		cand_add(m, tx, tn);
		return 0;
	case A_DLIT_END:
		if (t != T_GT)
			return -1;
		*st = M_DONE;
		return 0;
	case M_DONE:
	case M_GROUP_DONE:
	default:
		return -1;
	}
}

/* message_parse_mailbox - count the mailboxes of a mailbox-list or
 * address-list value (RFC 5322 3.4) and copy the first addr-spec */
int
message_parse_mailbox(const char *value, size_t len, char *addr, size_t addrlen)
{
	struct lexer lx = { value, len, 0 };
	struct mparse m;
	enum mstate st = M_START;
	int count = 0, in_group = 0, members = 0;

	if (addr != NULL && addrlen > 0)
		addr[0] = '\0';
	cand_reset(&m);
	for (;;) {
		size_t ts, tn;
		enum tok t = lex_next(&lx, &ts, &tn);
		int angle = st >= A_START;

		if (t == T_ERR)
			return -1;
		/* ',' ';' and the end close an element, except inside <>
		 * where ',' separates obs-route domains. */
		if (t == T_END || t == T_SEMI || (t == T_COMMA && !angle)) {
			if (st == M_DONE || st == M_DOMAIN_END) {
				if (m.overflow)
					return -1;
				if (count == 0 && addr != NULL) {
					if (m.clen >= addrlen)
						return -1;
					memcpy(addr, m.cand, m.clen);
					addr[m.clen] = '\0';
				}
				count++;
				members++;
			} else if (st == M_GROUP_DONE && t != T_SEMI) {
				/* "g:;" followed by ',' or the end */
			} else if (!(st == M_START && t == T_SEMI && in_group && members == 0)) {
				return -1;   /* empty or unfinished element */
			}
			if (t == T_END)
				return in_group ? -1 : count;
			if (t == T_SEMI) {
				if (!in_group)
					return -1;
				in_group = 0;
				st = M_GROUP_DONE;
			} else {
				st = M_START;
			}
			cand_reset(&m);
			continue;
		}
		if (mbox_step(&m, &st, t, value + ts, tn, &in_group, &members) < 0)
			return -1;
	}
}

/* clean - copy untrusted text for Received:, at most RCVD_PART_MAX
 * octets; controls, non-ASCII and the given specials become '?' */
static void
clean(char *dst, size_t dstlen, const char *src, const char *specials)
{
	size_t o = 0;

	if (src == NULL || *src == '\0')
		src = "unknown";
	for (; *src != '\0' && o + 1 < dstlen && o < RCVD_PART_MAX; src++) {
		unsigned char c = (unsigned char)*src;
		int bad = c < 0x20 || c > 0x7e || strchr(specials, c) != NULL;
		dst[o++] = bad ? '?' : (char)c;
	}
	dst[o] = '\0';
}

/* rcvd_piece - add one item to Received:, folding before it when the
 * line would pass 78 octets (RFC 5322 2.1.1) or when asked to */
static void
rcvd_piece(struct obuf *b, size_t *col, const char *piece, int newline)
{
	size_t n = strlen(piece);

	if (newline || *col + 1 + n > RCVD_FOLD) {
		ob_str(b, "\r\n\t");
		*col = 1;
	} else {
		ob_str(b, " ");
		(*col)++;
	}
	ob_add(b, piece, n);
	*col += n;
}

/* add_received - our trace field (RFC 5321 4.4), first in the message:
 * "from HELO (ip) by HOST (outpost) with PROTO id QID (using TLS)
 * for <rcpt>; date"; client text is cleaned so it cannot add lines */
static void
add_received(struct obuf *b, const struct message_params *p)
{
	char helo[RCVD_PART_MAX + 1], ip[RCVD_PART_MAX + 1], host[RCVD_PART_MAX + 1];
	char proto[RCVD_PART_MAX + 1], qid[RCVD_PART_MAX + 1], tls[RCVD_PART_MAX + 1];
	char rcpt[RCVD_PART_MAX + 1], piece[2 * RCVD_PART_MAX], date[DATE_MAX];
	size_t col;

	clean(helo, sizeof(helo), p->helo, "()\\");
	clean(ip, sizeof(ip), p->client_ip, "()\\ ");
	clean(host, sizeof(host), p->hostname, "()\\ ");
	clean(proto, sizeof(proto), p->protocol, "()\\ ");
	clean(qid, sizeof(qid), p->queue_id, "()\\ ");
	util_rfc5322_date(p->now, date, sizeof(date));

	ob_str(b, "Received:");
	col = strlen("Received:");
	snprintf(piece, sizeof(piece), "from %s", helo);
	rcvd_piece(b, &col, piece, 0);
	snprintf(piece, sizeof(piece), "(%s)", ip);
	rcvd_piece(b, &col, piece, 0);
	snprintf(piece, sizeof(piece), "by %s", host);
	rcvd_piece(b, &col, piece, 1);
	rcvd_piece(b, &col, "(outpost)", 0);
	snprintf(piece, sizeof(piece), "with %s", proto);
	rcvd_piece(b, &col, piece, 0);
	snprintf(piece, sizeof(piece), "id %s", qid);
	rcvd_piece(b, &col, piece, 0);
	if (p->tls != NULL) {
		clean(tls, sizeof(tls), p->tls, "()\\");
		snprintf(piece, sizeof(piece), "(using %s)", tls);
		rcvd_piece(b, &col, piece, 1);
	}
	if (p->rcpt_for != NULL) {
		clean(rcpt, sizeof(rcpt), p->rcpt_for, "<>");
		snprintf(piece, sizeof(piece), "for <%s>", rcpt);
		rcvd_piece(b, &col, piece, 1);
	}
	ob_str(b, ";");
	col++;
	rcvd_piece(b, &col, date, 0);
	ob_str(b, "\r\n");
}

/* addr_domain_at - index of the '@' that ends the local part (a quoted
 * local part may hold '@'), or -1 */
static long
addr_domain_at(const char *a)
{
	int inq = 0;

	for (long i = 0; a[i] != '\0'; i++) {
		if (inq && a[i] == '\\' && a[i + 1] != '\0')
			i++;
		else if (a[i] == '"')
			inq = !inq;
		else if (!inq && a[i] == '@')
			return i;
	}
	return -1;
}

/* copy_msgid - the Message-ID as found: "<...>" if there is one, else
 * the value without white space; bounded, CR/LF dropped */
static void
copy_msgid(char *dst, size_t dstlen, const char *v, size_t n)
{
	const char *lt = memchr(v, '<', n), *gt = NULL;
	size_t o = 0;

	if (lt != NULL)
		gt = memchr(lt, '>', n - (size_t)(lt - v));
	if (lt != NULL && gt != NULL) {
		v = lt;
		n = (size_t)(gt - lt) + 1;
	}
	for (size_t i = 0; i < n && o + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c > 0x20 && c != 0x7f)
			dst[o++] = (char)c;
	}
	dst[o] = '\0';
}

/* note_bulk_signs - Precedence:, List-* fields and the List-Id of f */
static void
note_bulk_signs(const char *in, const struct field *f, struct message_info *info)
{
	static const char *const prec[] = { "bulk", "list", "junk" };
	char v[MESSAGE_LIST_ID_MAX];
	size_t n;

	if (name_is(in, f, "Precedence")) {
		copy_msgid(v, sizeof(v), in + f->value, f->end - f->value);
		info->precedence = MESSAGE_PREC_OTHER;
		for (size_t k = 0; k < ARRAY_LEN(prec); k++)
			if (util_strcaseeq(v, prec[k]))
				info->precedence = (enum message_precedence)(MESSAGE_PREC_BULK + k);
		return;
	}
	if (f->namelen < 5 || strncasecmp(in + f->start, "List-", 5) != 0)
		return;
	info->has_list_header = 1;
	if (name_is(in, f, "List-Unsubscribe"))
		info->has_list_unsubscribe = 1;
	if (name_is(in, f, "List-Id") && info->list_id[0] == '\0') {
		copy_msgid(v, sizeof(v), in + f->value, f->end - f->value);
		n = strlen(v);
		if (n >= 2 && v[0] == '<' && v[n - 1] == '>')
			util_strlcpy(info->list_id, v + 1, n - 1);
	}
}

/* split_fields - cut the header section into fields; a line that is
 * neither "name:" nor a continuation (RFC 5322 2.2, 3.6.8) fails and
 * *bad gets its line number */
static int
split_fields(const char *in, size_t hdr_end, struct field **fp, size_t *nfp, size_t *bad)
{
	struct field *f = NULL;
	size_t nf = 0, cap = 0, pos = 0, lineno = 0;

	while (pos < hdr_end) {
		const char *nl = memchr(in + pos, '\n', hdr_end - pos);
		size_t end = nl ? (size_t)(nl - in) + 1 : hdr_end, i = pos;

		lineno++;
		if (in[pos] == ' ' || in[pos] == '\t') {
			if (nf == 0)
				goto fail;
			f[nf - 1].end = end;
		} else {
			while (i < end && in[i] != ':' && (unsigned char)in[i] >= 33 &&
			    (unsigned char)in[i] <= 126)
				i++;
			if (i == pos || i >= end || in[i] != ':')
				goto fail;
			if (nf == cap) {
				cap = cap ? cap * 2 : 32;
				f = xreallocarray(f, cap, sizeof(*f));
			}
			f[nf].start = pos;
			f[nf].namelen = i - pos;
			f[nf].value = i + 1;
			f[nf].end = end;
			nf++;
		}
		pos = end;
	}
	*fp = f;
	*nfp = nf;
	return 0;
fail:
	free(f);
	*bad = lineno;
	return -1;
}

/* scan_lines - one pass over all lines: the end of the header section
 * (the first empty line, RFC 5322 2.1), the first line over 998 octets
 * and the first bare CR or LF */
static void
scan_lines(const char *in, size_t inlen, size_t *hdr_end, int *blank,
    size_t *long_line, size_t *bare_line)
{
	size_t pos = 0, lineno = 0;

	*hdr_end = inlen;
	*blank = 0;
	*long_line = *bare_line = 0;
	while (pos < inlen) {
		const char *nl = memchr(in + pos, '\n', inlen - pos);
		size_t eol = nl ? (size_t)(nl - in) : inlen, cend = eol;

		lineno++;
		if (nl != NULL && eol > pos && in[eol - 1] == '\r')
			cend = eol - 1;
		else if (nl != NULL && *bare_line == 0)
			*bare_line = lineno;
		if (*bare_line == 0 && memchr(in + pos, '\r', cend - pos) != NULL)
			*bare_line = lineno;
		if (cend - pos > MESSAGE_LINE_MAX && *long_line == 0)
			*long_line = lineno;
		if (!*blank && cend == pos && cend < eol) {
			*blank = 1;
			*hdr_end = pos;
		}
		pos = nl ? eol + 1 : inlen;
	}
}

/* message_prepare - check the message, then build the fixed copy.
 * max_header_size 0 means no limit. Beyond the checks of message.h a bare
 * CR or LF is refused too: the session already does so, and a lone one
 * would let the output be read differently upstream (S1/S2). */
int
message_prepare(const char *in, size_t inlen, const struct message_params *p,
    struct message_info *info, char **out, size_t *outlen, char *err, size_t errlen)
{
	struct field *f = NULL;
	size_t nf = 0, hdr_end, long_line, bare_line, bad, counts[ARRAY_LEN(single_fields)];
	size_t nfrom = 0, from_i = 0, sender_i = 0, msgid_i = 0;
	int blank, has_sender = 0, has_msgid = 0, has_date = 0;
	struct obuf b = { NULL, 0, 0 };
	long at;

	memset(info, 0, sizeof(*info));
	*out = NULL;
	*outlen = 0;
	scan_lines(in, inlen, &hdr_end, &blank, &long_line, &bare_line);
	if (p->max_header_size > 0 && hdr_end > p->max_header_size) {
		util_seterr(err, errlen, "552 5.3.4 Header section too large (limit %zu bytes)",
		    p->max_header_size);
		return -1;
	}
	if (long_line > 0) {
		util_seterr(err, errlen, "550 5.6.0 Line %zu is longer than %d octets (RFC 5322 2.1.1)",
		    long_line, MESSAGE_LINE_MAX);
		return -1;
	}
	if (bare_line > 0) {
		util_seterr(err, errlen, "550 5.6.0 Line %zu holds a bare CR or LF (RFC 5322 2.3)",
		    bare_line);
		return -1;
	}
	if (split_fields(in, hdr_end, &f, &nf, &bad) < 0) {
		util_seterr(err, errlen, "550 5.6.0 Malformed header field at line %zu (RFC 5322 2.2)", bad);
		return -1;
	}

	memset(counts, 0, sizeof(counts));
	for (size_t i = 0; i < nf; i++) {
		note_bulk_signs(in, &f[i], info);
		if (name_is(in, &f[i], "From")) {
			if (nfrom++ == 0)
				from_i = i;
			continue;
		}
		for (size_t k = 0; k < ARRAY_LEN(single_fields); k++)
			if (name_is(in, &f[i], single_fields[k])) {
				counts[k]++;
				if (util_strcaseeq(single_fields[k], "Sender"))
					has_sender = 1, sender_i = i;
				else if (util_strcaseeq(single_fields[k], "Message-ID"))
					has_msgid = 1, msgid_i = i;
				else if (util_strcaseeq(single_fields[k], "Date"))
					has_date = 1;
				break;
			}
	}
	if (nfrom != 1) {
		util_seterr(err, errlen, "550 5.6.0 Message must have exactly one From: header (found %zu)",
		    nfrom);
		goto fail;
	}
	if (message_parse_mailbox(in + f[from_i].value, f[from_i].end - f[from_i].value,
	    info->from_addr, sizeof(info->from_addr)) != 1 ||
	    (at = addr_domain_at(info->from_addr)) < 0) {
		info->from_addr[0] = '\0';
		util_seterr(err, errlen, "550 5.6.0 From: header must hold exactly one mailbox");
		goto fail;
	}
	for (size_t k = 0; k < ARRAY_LEN(single_fields); k++)
		if (counts[k] > 1) {
			util_seterr(err, errlen, "550 5.6.0 Duplicate %s: header (RFC 5322 3.6 allows one)",
			    single_fields[k]);
			goto fail;
		}

	util_strlower(info->from_addr + at + 1);
	util_strlcpy(info->from_domain, info->from_addr + at + 1, sizeof(info->from_domain));
	if (has_sender && message_parse_mailbox(in + f[sender_i].value,
	    f[sender_i].end - f[sender_i].value, info->sender_addr,
	    sizeof(info->sender_addr)) < 1)
		info->sender_addr[0] = '\0';
	if (has_msgid)
		copy_msgid(info->message_id, sizeof(info->message_id), in + f[msgid_i].value,
		    f[msgid_i].end - f[msgid_i].value);

	add_received(&b, p);
	for (size_t i = 0; i < nf; i++) {
		if (name_is(in, &f[i], "Bcc")) {
			info->removed_bcc = 1;   /* RFC 5322 3.6.3 */
			continue;
		}
		ob_add(&b, in + f[i].start, f[i].end - f[i].start);
		if (in[f[i].end - 1] != '\n')   /* unterminated last line */
			ob_str(&b, "\r\n");
	}
	if (!has_date) {
		char date[DATE_MAX];

		util_rfc5322_date(p->now, date, sizeof(date));
		ob_str(&b, "Date: ");
		ob_str(&b, date);
		ob_str(&b, "\r\n");
		info->added_date = 1;
	}
	if (!has_msgid) {
		char host[RCVD_PART_MAX + 1], qid[RCVD_PART_MAX + 1], id[2 * RCVD_PART_MAX + 32];

		clean(host, sizeof(host), p->hostname, "()\\<>@ ");
		clean(qid, sizeof(qid), p->queue_id, "()\\<>@ ");
		snprintf(id, sizeof(id), "<%s.%lld@%s>", qid, (long long)p->now, host);
		ob_str(&b, "Message-ID: ");
		ob_str(&b, id);
		ob_str(&b, "\r\n");
		util_strlcpy(info->message_id, id, sizeof(info->message_id));
		info->added_message_id = 1;
	}
	info->header_len = b.len + (blank ? 2 : 0);
	ob_add(&b, in + hdr_end, inlen - hdr_end);
	free(f);
	*out = b.p;
	*outlen = b.len;
	return 0;
fail:
	free(f);
	return -1;
}
