// Go clientv3 (etcd 3.4's client, from Debian's golang-etcd-server-dev; the
// client kvrocks-controller and most Go engines use) against an etcd v3 API:
// KV by prefix, a txn, a lease kept alive then revoked with its key, a watch
// seeing puts in order, and the concurrency package's mutex and election, each
// contended by two sessions.
//
// Usage: go_clientv3 HOST:PORT[,HOST:PORT...]. Prints one line per check ("ok   ..."
// or "FAIL ...") and exits 0 when all hold, 1 otherwise (2: no client at all).
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/clientv3/concurrency"
)

var failures []string
var cancels []context.CancelFunc

func check(what string, ok bool, detail ...interface{}) {
	if ok {
		fmt.Println("ok   " + what)
		return
	}
	fmt.Println("FAIL "+what, fmt.Sprint(detail...))
	failures = append(failures, what)
}

// ctx: every call of a check is bounded, so a hang fails the check instead of the run.
func ctx() context.Context {
	c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	cancels = append(cancels, cancel)
	return c
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go_clientv3 HOST:PORT[,HOST:PORT...]")
		os.Exit(2)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(os.Args[1], ","), DialTimeout: 10 * time.Second})
	if err != nil {
		fmt.Println("FAIL a client connects:", err)
		os.Exit(2)
	}
	defer c.Close()

	// KV: puts, then a get by prefix in key order, and a delete by prefix.
	for i := 0; i < 3; i++ {
		_, err := c.Put(ctx(), fmt.Sprintf("go/kv/%d", i), fmt.Sprintf("v%d", i))
		check(fmt.Sprintf("put go/kv/%d", i), err == nil, err)
	}
	got, err := c.Get(ctx(), "go/kv/", clientv3.WithPrefix())
	okPrefix := err == nil && len(got.Kvs) == 3
	for i := 0; okPrefix && i < 3; i++ {
		okPrefix = string(got.Kvs[i].Key) == fmt.Sprintf("go/kv/%d", i) && string(got.Kvs[i].Value) == fmt.Sprintf("v%d", i)
	}
	check("get by prefix answers the 3 keys in order with their values", okPrefix, err, got)
	del, err := c.Delete(ctx(), "go/kv/", clientv3.WithPrefix())
	check("delete by prefix deletes the 3 keys", err == nil && del.Deleted == 3, err, del)

	// Txn: compare, then one branch.
	t, err := c.Txn(ctx()).If(clientv3.Compare(clientv3.Version("go/t"), "=", 0)).
		Then(clientv3.OpPut("go/t", "first")).Else(clientv3.OpGet("go/t")).Commit()
	check("a txn whose compare holds runs its then branch", err == nil && t.Succeeded, err)
	t, err = c.Txn(ctx()).If(clientv3.Compare(clientv3.Version("go/t"), "=", 0)).
		Then(clientv3.OpPut("go/t", "second")).Else(clientv3.OpGet("go/t")).Commit()
	check("a txn whose compare fails runs its else branch and reads",
		err == nil && !t.Succeeded && len(t.Responses) == 1 &&
			len(t.Responses[0].GetResponseRange().Kvs) == 1 &&
			string(t.Responses[0].GetResponseRange().Kvs[0].Value) == "first", err, t)

	// Lease: kept alive past its TTL, then revoked with its key.
	lease, err := c.Grant(ctx(), 2)
	check("a lease is granted with its TTL", err == nil && lease.TTL == 2, err, lease)
	if err == nil {
		_, err = c.Put(ctx(), "go/leased", "x", clientv3.WithLease(lease.ID))
		check("a put on the lease", err == nil, err)
		kctx, stop := context.WithCancel(context.Background())
		ka, err := c.KeepAlive(kctx, lease.ID)
		check("keep-alive starts", err == nil, err)
		answers := 0
		for until := time.After(4 * time.Second); err == nil; {
			select {
			case r := <-ka:
				if r != nil && r.ID == lease.ID {
					answers++
				}
				continue
			case <-until:
			}
			break
		}
		check("keep-alive is answered", answers > 0, answers)
		g, err := c.Get(ctx(), "go/leased")
		check("a lease kept alive past its TTL keeps its key", err == nil && len(g.Kvs) == 1, err)
		stop()
		_, err = c.Revoke(ctx(), lease.ID)
		check("a lease is revoked", err == nil, err)
		g, err = c.Get(ctx(), "go/leased")
		check("a revoked lease takes its key", err == nil && len(g.Kvs) == 0, err)
		ttl, err := c.TimeToLive(ctx(), lease.ID)
		check("a revoked lease is gone", err == nil && ttl != nil && ttl.TTL == -1, err, ttl)
	}

	// Watch: every put under the prefix, in order, once.
	wctx, wstop := context.WithCancel(context.Background())
	start, err := c.Get(ctx(), "go/none")
	if err != nil {
		check("a read before the watch", false, err)
	} else {
		w := c.Watch(wctx, "go/w/", clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1))
		for i := 0; i < 20; i++ {
			if _, err := c.Put(ctx(), fmt.Sprintf("go/w/%02d", i), fmt.Sprint(i)); err != nil {
				check("a watched put", false, err)
				break
			}
		}
		var seen []string
		var revs []int64
		for until := time.After(15 * time.Second); len(seen) < 20; {
			select {
			case r, open := <-w:
				if !open || r.Err() != nil {
					check("the watch stays open", false, r.Err())
					until = nil
				}
				for _, e := range r.Events {
					seen = append(seen, string(e.Kv.Key)+"="+string(e.Kv.Value))
					revs = append(revs, e.Kv.ModRevision)
				}
				continue
			case <-until:
			}
			break
		}
		inOrder := len(seen) == 20
		for i := 0; inOrder && i < 20; i++ {
			inOrder = seen[i] == fmt.Sprintf("go/w/%02d=%d", i, i) && (i == 0 || revs[i] == revs[i-1]+1)
		}
		check("a watch sees every put once, in order, at consecutive revisions", inOrder, seen, revs)
	}
	wstop()

	// A mutex (concurrency.NewMutex), contended: the second session gets it once the first unlocks.
	s1, err1 := concurrency.NewSession(c, concurrency.WithTTL(5))
	s2, err2 := concurrency.NewSession(c, concurrency.WithTTL(5))
	check("two sessions", err1 == nil && err2 == nil, err1, err2)
	if err1 == nil && err2 == nil {
		m1, m2 := concurrency.NewMutex(s1, "go/lock"), concurrency.NewMutex(s2, "go/lock")
		err := m1.Lock(ctx())
		check("the first session locks the free mutex", err == nil, err)
		second := make(chan error, 1)
		go func() { second <- m2.Lock(ctx()) }()
		select {
		case err := <-second:
			check("the second session waits while the first holds the mutex", false, err)
		case <-time.After(time.Second):
			check("the second session waits while the first holds the mutex", true)
		}
		held, err := c.Txn(ctx()).If(m1.IsOwner()).Commit()
		check("the first session owns the mutex", err == nil && held.Succeeded, err)
		err = m1.Unlock(ctx())
		check("the first session unlocks", err == nil, err)
		select {
		case err := <-second:
			check("the second session gets the mutex once the first unlocks", err == nil, err)
		case <-time.After(15 * time.Second):
			check("the second session gets the mutex once the first unlocks", false, "timed out")
		}
		held, err = c.Txn(ctx()).If(m2.IsOwner()).Commit()
		check("the second session owns the mutex", err == nil && held.Succeeded, err)
		err = m2.Unlock(ctx())
		check("the second session unlocks", err == nil, err)

		// An election (concurrency.NewElection): campaign, leader, resign; the next candidate leads.
		e1, e2 := concurrency.NewElection(s1, "go/elect"), concurrency.NewElection(s2, "go/elect")
		err = e1.Campaign(ctx(), "one")
		check("the first candidate leads the empty election", err == nil, err)
		l, err := e1.Leader(ctx())
		check("Leader answers the first candidate's value", err == nil && len(l.Kvs) == 1 && string(l.Kvs[0].Value) == "one", err)
		go func() { second <- e2.Campaign(ctx(), "two") }()
		select {
		case err := <-second:
			check("the second candidate waits while the first leads", false, err)
		case <-time.After(time.Second):
			check("the second candidate waits while the first leads", true)
		}
		err = e1.Resign(ctx())
		check("the first candidate resigns", err == nil, err)
		select {
		case err := <-second:
			check("the second candidate leads once the first resigns", err == nil, err)
		case <-time.After(15 * time.Second):
			check("the second candidate leads once the first resigns", false, "timed out")
		}
		l, err = e2.Leader(ctx())
		check("Leader answers the second candidate's value", err == nil && len(l.Kvs) == 1 && string(l.Kvs[0].Value) == "two", err)
		err = e2.Resign(ctx())
		check("the second candidate resigns", err == nil, err)
		_, err = e2.Leader(ctx())
		check("an election with no candidate has no leader", err == concurrency.ErrElectionNoLeader, err)
		s1.Close()
		s2.Close()
	}

	if len(failures) > 0 {
		fmt.Printf("%d checks failed\n", len(failures))
		os.Exit(1)
	}
	fmt.Println("all checks passed")
}
